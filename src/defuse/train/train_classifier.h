// Stage: train a zoo classifier on a dataset's training split, evaluate it on the test split.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "defuse/data/dataset.h"
#include "defuse/model/classifier.h"

namespace defuse {

struct TrainProgress {
  int epoch = 0, epochs = 0;       // 1-based epoch
  int64_t batch = 0, batches = 0;  // 1-based batch within the epoch
  double loss = 0;                 // running mean training loss of this epoch
  double accuracy = 0;             // running training accuracy of this epoch
};

struct TrainClassifierOptions {
  std::string arch = "auto";       // zoo architecture: auto (the cnn, any shape), cnn, resnet, mlp
  int epochs = 4;                  // passes over the training split
  int64_t batch_size = 128;        // small batches train these small nets fastest per epoch here
  double lr = 3e-3;                // peak learning rate of the one-cycle schedule (AdamW)
  double weight_decay = 5e-4;      // AdamW decoupled weight decay
  bool augment = false;            // random ±2 px shifts of each training image
  uint64_t seed = 0;               // seeds initialisation, shuffling, dropout and augmentation
  std::string device = "cpu";      // cpu or cuda[:N]
  std::string precision = "fp32";  // fp32; bf16: the forward passes of training in bfloat16 autocast (the loss,
                                   // the optimiser, evaluation and the stored model stay fp32); auto: bf16 where
                                   // the CPU has AVX512-BF16 (AMX). fp32 by default for the classifier under
                                   // test: bf16 cost Fashion-MNIST 0.24 points at 4 epochs (92.69% against
                                   // 92.93%) and needed a fifth for fp32's accuracy, for 14 s saved; the
                                   // judges train in bf16 (TrainJudgesOptions::precision)
  int64_t eval_batch_size = 1000;
  std::function<void(const TrainProgress&)> on_progress;  // called after every batch

  void validate() const;  // throws ConfigError
};

struct EpochStats {
  int epoch = 0;
  double train_loss = 0, train_accuracy = 0, seconds = 0;
};

struct Evaluation {
  double accuracy = 0;
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
};

struct TrainClassifierResult {
  std::unique_ptr<Classifier> model;  // on the CPU
  std::vector<EpochStats> epochs;
  Evaluation test;
  double seconds = 0;       // training time, evaluation excluded
  int64_t steps = 0;        // optimiser steps
  int ranks = 1;            // processes that trained it together (DESIGN §6)
  double comm_seconds = 0;  // of which spent in gradient allreduces (this rank)
  int64_t comm_bytes = 0;   // bytes allreduced (this rank's share of each collective)
};

// Trains data-parallel over the current world's ranks when there is one (dist/world.h);
// then only rank 0 scores the model (`test` is empty elsewhere).
TrainClassifierResult train_classifier(const Dataset& dataset, const TrainClassifierOptions& options);

// Accuracy and confusion matrix of `model` on a split.
Evaluation evaluate_classifier(Classifier& model, const DataSplit& split, const Dataset& dataset, int64_t batch_size,
                               const std::string& device);

}  // namespace defuse
