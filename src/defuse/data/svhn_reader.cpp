// SVHN cropped digits: train_32x32.mat / test_32x32.mat (MATLAB v5) read through matio.
#include <matio.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "defuse/base/error.h"
#include "defuse/data/dataset.h"

namespace defuse {
namespace {

namespace fs = std::filesystem;

// matio reports problems through a log callback, and on a truncated stream it may still
// return a variable (partly zero) after a warning. Keep the last warning or error of this
// thread so reads can be checked and our errors can quote it, instead of letting matio
// print to stderr.
thread_local std::string matio_message;

void keep_matio_message(int level, char* message) {
  if (level & (MATIO_LOG_LEVEL_ERROR | MATIO_LOG_LEVEL_CRITICAL | MATIO_LOG_LEVEL_WARNING)) {
    matio_message = message ? message : "error";
  }
}

std::string number_text(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

std::string matio_detail() { return matio_message.empty() ? "" : " (matio: " + matio_message + ")"; }

using MatFile = std::unique_ptr<mat_t, int (*)(mat_t*)>;
using MatVar = std::unique_ptr<matvar_t, void (*)(matvar_t*)>;

// Reads one .mat file; returns its images' height and width.
std::pair<int64_t, int64_t> read_svhn_split(const std::string& path, DataSplit& split) {
  auto fail = [&](const std::string& problem) { throw DataError("data: " + path + ": " + problem + matio_detail()); };
  if (!fs::is_regular_file(path)) throw IoError("data: svhn: " + path + " not found");
  static std::once_flag quiet_once;
  std::call_once(quiet_once, [] { Mat_LogInitFunc("defuse", &keep_matio_message); });
  matio_message.clear();

  const uint64_t file_size = fs::file_size(path);
  if (file_size < 128) fail("too short for a MATLAB v5 file (its header alone is 128 bytes)");
  MatFile mat(Mat_Open(path.c_str(), MAT_ACC_RDONLY), &Mat_Close);
  if (!mat) fail("not a readable MATLAB v5 file");
  MatVar x_info(Mat_VarReadInfo(mat.get(), "X"), &Mat_VarFree);
  if (!x_info) fail("has no variable X");
  if (x_info->class_type != MAT_C_UINT8 || x_info->isComplex) fail("X is not a real uint8 array");
  // X is H x W x C x N in MATLAB's column-major order; MATLAB drops the last dim when N = 1.
  const size_t* dims = x_info->dims;
  if (!(x_info->rank == 4 || x_info->rank == 3) || dims[0] == 0 || dims[1] == 0 || dims[2] != 3) {
    fail("X must be H x W x 3 x N with H, W > 0");
  }
  const uint64_t height = dims[0], width = dims[1], channels = dims[2];
  const uint64_t n = x_info->rank == 4 ? dims[3] : 1;
  // Check the claimed size against the file before matio allocates it: zlib cannot expand
  // data more than 1032:1. The product saturates, so crafted dims cannot overflow it.
  uint64_t x_bytes = 1;
  for (int i = 0; i < x_info->rank; ++i) {
    x_bytes = dims[i] != 0 && x_bytes > std::numeric_limits<uint64_t>::max() / dims[i]
                  ? std::numeric_limits<uint64_t>::max()
                  : x_bytes * dims[i];
  }
  if (x_bytes > file_size * 1032) {
    fail("X claims " + std::to_string(height) + "x" + std::to_string(width) + "x3x" + std::to_string(n) +
         " bytes, more than the " + std::to_string(file_size) + "-byte file can hold");
  }
  matio_message.clear();
  MatVar x(Mat_VarRead(mat.get(), "X"), &Mat_VarFree);
  if (!x || !x->data || x->nbytes != x_bytes || !matio_message.empty()) {
    fail("cannot read X (truncated or corrupt)");
  }
  MatVar y(Mat_VarRead(mat.get(), "y"), &Mat_VarFree);
  if (!y || !y->data || !matio_message.empty()) {
    fail("cannot read y (missing, truncated or corrupt)");
  }
  if ((y->class_type != MAT_C_DOUBLE && y->class_type != MAT_C_UINT8) || y->isComplex || y->rank != 2 ||
      (y->dims[0] != 1 && y->dims[1] != 1)) {
    fail("y must be a real double or uint8 vector");
  }
  const uint64_t labels = y->dims[0] * y->dims[1];
  if (labels != n) {
    fail("X holds " + std::to_string(n) + " images but y holds " + std::to_string(labels) + " labels");
  }
  split.labels.resize(n);
  for (uint64_t i = 0; i < n; ++i) {
    const double value = y->class_type == MAT_C_DOUBLE ? static_cast<const double*>(y->data)[i]
                                                       : static_cast<const uint8_t*>(y->data)[i];
    if (!(value >= 1 && value <= 10) || value != std::floor(value)) {
      fail("label " + number_text(value) + " of example " + std::to_string(i) + " is outside 1..10");
    }
    split.labels[i] = value == 10 ? 0 : static_cast<int64_t>(value);  // SVHN writes 0 as 10
  }

  // Column-major X(h, w, c, n) sits at h + H*(w + W*(c + C*n)); we store [N, C, H, W].
  const auto* src = static_cast<const uint8_t*>(x->data);
  const uint64_t plane = height * width;
  split.images.resize(x_bytes);
  for (uint64_t image_plane = 0; image_plane < n * channels; ++image_plane) {
    const uint8_t* in = src + image_plane * plane;
    uint8_t* out = split.images.data() + image_plane * plane;
    for (uint64_t h = 0; h < height; ++h) {
      for (uint64_t w = 0; w < width; ++w) out[h * width + w] = in[w * height + h];
    }
  }
  return {static_cast<int64_t>(height), static_cast<int64_t>(width)};
}

}  // namespace

Dataset read_svhn(const std::string& dir) {
  if (!fs::is_directory(dir)) throw IoError("data: svhn: directory " + dir + " does not exist");
  Dataset dataset;
  dataset.name = "svhn";
  dataset.source = "train_32x32.mat and test_32x32.mat in " + dir;
  dataset.class_names = digit_classes();
  dataset.channels = 3;
  const std::string test_path = (fs::path(dir) / "test_32x32.mat").string();
  std::tie(dataset.height, dataset.width) =
      read_svhn_split((fs::path(dir) / "train_32x32.mat").string(), dataset.train);
  const auto [test_height, test_width] = read_svhn_split(test_path, dataset.test);
  if (test_height != dataset.height || test_width != dataset.width) {
    throw DataError("data: " + test_path + ": images are " + std::to_string(test_width) + "x" +
                    std::to_string(test_height) + " but training images are " + std::to_string(dataset.width) + "x" +
                    std::to_string(dataset.height));
  }
  dataset.validate();
  return dataset;
}

}  // namespace defuse
