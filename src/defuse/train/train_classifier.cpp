#include "defuse/train/train_classifier.h"

#include <chrono>
#include <cmath>
#include <optional>

#include "defuse/base/error.h"
#include "defuse/base/timing.h"
#include "defuse/dist/data_parallel.h"
#include "defuse/dist/world.h"
#include "defuse/model/device.h"
#include "defuse/model/tensors.h"

namespace defuse {

namespace {

constexpr const char* kStage = "train-classifier";
constexpr int64_t kShift = 2;  // --augment: shifts of up to ±2 pixels

// One-cycle learning rate (Smith & Topin 2019): linear warm-up over the first 25% of
// steps from lr/25 to lr, then cosine annealing to lr/1e4. Reaches a given accuracy in
// fewer epochs than a constant rate, which is what the time-to-accuracy target rewards.
double one_cycle_lr(double peak, int64_t step, int64_t total) {
  const double warm = 0.25 * static_cast<double>(total);
  const double start = peak / 25.0, end = peak / 1e4;
  const double t = static_cast<double>(step);
  if (t < warm) return start + (peak - start) * t / warm;
  double progress = (t - warm) / std::max(1.0, static_cast<double>(total) - warm);
  return end + 0.5 * (peak - end) * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
}

// Random translations by up to `shift` pixels, one per image, by offsets `dy`, `dx` [N] in
// [0, 2·shift]: pad, then gather a shifted window (vectorised; no per-image loop).
torch::Tensor shift_images(const torch::Tensor& x, int64_t shift, const torch::Tensor& dy, const torch::Tensor& dx) {
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  auto padded = torch::constant_pad_nd(x, {shift, shift, shift, shift}, 0);
  auto rows = (torch::arange(h).view({1, h}) + dy.view({n, 1}));  // [N, H]
  auto cols = (torch::arange(w).view({1, w}) + dx.view({n, 1}));  // [N, W]
  auto c = x.size(1);
  auto idx_rows = rows.view({n, 1, h, 1}).expand({n, c, h, padded.size(3)});
  auto gathered = padded.gather(2, idx_rows);  // [N, C, H, W + 2s]
  auto idx_cols = cols.view({n, 1, 1, w}).expand({n, c, h, w});
  return gathered.gather(3, idx_cols);
}

}  // namespace

void TrainClassifierOptions::validate() const {
  check_option(epochs > 0, kStage, "--epochs must be positive (got " + std::to_string(epochs) + ")");
  check_option(batch_size > 0, kStage, "--batch-size must be positive (got " + std::to_string(batch_size) + ")");
  check_option(lr > 0 && std::isfinite(lr), kStage, "--lr must be a positive number");
  check_option(weight_decay >= 0, kStage, "--weight-decay must be non-negative");
  check_option(eval_batch_size > 0, kStage, "evaluation batch size must be positive");
  check_precision(precision, kStage);
}

Evaluation evaluate_classifier(Classifier& model, const DataSplit& split, const Dataset& dataset, int64_t batch_size,
                               const std::string& device_name) {
  Evaluation out;
  const auto k = static_cast<size_t>(dataset.num_classes());
  out.confusion.assign(k, std::vector<int64_t>(k, 0));
  if (split.size() == 0) return out;
  auto device = parse_device(device_name, kStage);
  auto logits = predict_logits(model, images_tensor(split, dataset), batch_size, device);
  auto predicted = logits.argmax(1).contiguous();
  const int64_t* p = predicted.data_ptr<int64_t>();
  int64_t correct = 0;
  for (int64_t i = 0; i < split.size(); ++i) {
    auto truth = static_cast<size_t>(split.labels[static_cast<size_t>(i)]);
    auto guess = static_cast<size_t>(p[i]);
    correct += truth == guess;
    if (truth < k && guess < k) ++out.confusion[truth][guess];
  }
  out.accuracy = static_cast<double>(correct) / static_cast<double>(split.size());
  return out;
}

TrainClassifierResult train_classifier(const Dataset& dataset, const TrainClassifierOptions& options) {
  options.validate();
  if (dataset.train.size() == 0) throw DataError(std::string(kStage) + ": the dataset's training split is empty");
  auto device = parse_device(options.device, kStage);
  const bool bf16 = resolve_precision(options.precision, device) == "bf16";
  check_option(!bf16 || device.is_cpu(), kStage, "--precision bf16 is implemented for the CPU only");
  auto start = std::chrono::steady_clock::now();

  torch::manual_seed(options.seed);
  auto gen = at::detail::createCPUGenerator(options.seed + 1);

  ClassifierSpec spec;
  spec.arch = options.arch;
  spec.channels = dataset.channels;
  spec.height = dataset.height;
  spec.width = dataset.width;
  spec.num_classes = dataset.num_classes();
  std::tie(spec.mean, spec.std) = channel_statistics(dataset.train, dataset);
  auto model = make_classifier(spec);
  model->to(device);

  torch::optim::AdamW optimizer(model->parameters(),
                                torch::optim::AdamWOptions(options.lr).weight_decay(options.weight_decay));
  auto images = images_tensor(dataset.train, dataset);  // [N, C, H, W] uint8
  auto labels = labels_tensor(dataset.train);           // [N]
  const int64_t n = images.size(0);
  const int64_t batches = (n + options.batch_size - 1) / options.batch_size;
  const int epochs = options.epochs;
  const int64_t total_steps = batches * epochs;
  int64_t step = 0;

  // Data parallel over the current world's ranks (one process: the shard is the batch).
  dist::DataParallel parallel(*model);
  TrainClassifierResult result;
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    auto epoch_start = std::chrono::steady_clock::now();
    model->set_training(true);
    auto order = torch::randperm(n, gen, torch::kLong);
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    for (int64_t b = 0; b < batches; ++b) {
      auto batch = order.slice(0, b * options.batch_size, std::min(n, (b + 1) * options.batch_size));
      const int64_t m = batch.size(0);
      // Every rank draws the whole batch's random numbers, so the streams stay in step.
      at::Tensor dy, dx;
      if (options.augment) {
        dy = torch::randint(0, 2 * kShift + 1, {m}, gen, torch::kLong);
        dx = torch::randint(0, 2 * kShift + 1, {m}, gen, torch::kLong);
      }
      const auto [s0, s1] = dist::shard_range(m);
      auto idx = batch.slice(0, s0, s1);
      double lr = one_cycle_lr(options.lr, step++, total_steps);
      for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);

      optimizer.zero_grad();
      std::vector<double> stats{0.0, 0.0};  // this shard's loss sum and hits, then the batch's
      if (s1 > s0) {
        auto x = to_unit_float(images.index_select(0, idx), device);
        if (options.augment)
          x = shift_images(x, kShift, dy.slice(0, s0, s1), dx.slice(0, s0, s1))
                  .contiguous(at::MemoryFormat::ChannelsLast);
        auto y = labels.index_select(0, idx).to(device);
        at::Tensor logits;
        {
          std::optional<CpuBf16Autocast> autocast;
          if (bf16) autocast.emplace();
          logits = model->forward(x);
        }
        logits = logits.to(torch::kFloat32);
        // The shard's share of the batch's mean loss (the mean itself in one process).
        auto loss = parallel.active()
                        ? torch::nn::functional::cross_entropy(
                              logits, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) /
                              static_cast<double>(m)
                        : torch::nn::functional::cross_entropy(logits, y);
        loss.backward();
        stats[0] = loss.item<double>() * static_cast<double>(m);
        stats[1] = static_cast<double>(logits.argmax(1).eq(y).sum().item<int64_t>());
      }
      parallel.sync_gradients(stats);
      optimizer.step();

      loss_sum += stats[0];
      correct += static_cast<int64_t>(stats[1]);
      seen += m;
      if (!std::isfinite(loss_sum))
        throw Error(std::string(kStage) + ": training diverged (loss is not finite) in epoch " + std::to_string(epoch) +
                    "; lower --lr");
      if (options.on_progress)
        options.on_progress({epoch, epochs, b + 1, batches, loss_sum / static_cast<double>(seen),
                             static_cast<double>(correct) / static_cast<double>(seen)});
    }
    double secs = seconds_since(epoch_start);
    result.epochs.push_back(
        {epoch, loss_sum / static_cast<double>(seen), static_cast<double>(correct) / static_cast<double>(seen), secs});
  }
  parallel.sync_buffers();
  result.steps = total_steps;
  result.ranks = dist::current_size();
  result.comm_seconds = parallel.comm_seconds();
  result.comm_bytes = parallel.bytes_sent();
  result.seconds = seconds_since(start);
  // Rank 0 scores the model (the other ranks' copies are the same and are not kept).
  if (dist::is_root())
    result.test = evaluate_classifier(*model, dataset.test, dataset, options.eval_batch_size, options.device);
  model->to(torch::kCPU);
  result.model = std::move(model);
  return result;
}

}  // namespace defuse
