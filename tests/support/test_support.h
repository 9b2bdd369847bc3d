// Test support: temporary directories, a tiny deterministic dataset, and writers that
// produce small files in each real dataset format (IDX, SVHN .mat, GTSRB tree, image
// folders). Writers throw std::runtime_error if they cannot write.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "defuse/base/image_io.h"
#include "defuse/data/dataset.h"

namespace defuse::test {

// A fresh directory under the system's temporary directory, removed with everything in it
// when the object goes out of scope.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const;

 private:
  std::filesystem::path path_;
};

// The message of the `Expected` exception that `f` throws; records a test failure and
// returns "" if it throws none (another exception class propagates and fails the test).
template <typename Expected, typename F>
std::string error_message(F f) {
  try {
    f();
  } catch (const Expected& e) {
    return e.what();
  }
  ADD_FAILURE() << "no exception of the expected class was thrown";
  return "";
}

// Whether `text` contains `part` (for checking error messages).
inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The real datasets beside the project (../shared/data from the repository root), or
// $DEFUSE_SHARED_DATA when set. It may be absent: tests that use it must GTEST_SKIP.
std::filesystem::path shared_data_dir();

// A small deterministic dataset named "toy": example i has label i % num_classes, and each
// class lights a different horizontal band of the image (so it is learnable), with
// per-pixel variation. Class names are "class0", "class1", ... (sorted = label order for up
// to 10 classes).
Dataset make_toy_dataset(int64_t n_train, int64_t n_test, int64_t channels, int64_t height, int64_t width,
                         int64_t num_classes);

// Example `index` of `split` as an interleaved image.
Image split_image(const Dataset& dataset, const DataSplit& split, int64_t index);

// Writes `bytes` (or `text`) to `path`, creating its parent directories.
void write_file(const std::filesystem::path& path, const std::vector<uint8_t>& bytes);
void write_file(const std::filesystem::path& path, std::string_view text);

// Compresses `bytes` as a single gzip member.
std::vector<uint8_t> gzip_bytes(const std::vector<uint8_t>& bytes);

// The bytes of an IDX file of unsigned bytes (magic 0x0000 08 <rank>, big-endian dims).
std::vector<uint8_t> idx_bytes(const std::vector<int64_t>& dims, const std::vector<uint8_t>& data);

// How write_idx_dataset names its files.
enum class IdxNaming {
  kOfficial,  // train-images-idx3-ubyte
  kDotted,    // train-images.idx3-ubyte
};

// Writes a 1-channel dataset as the four MNIST files (train-*, t10k-*) in `dir`.
void write_idx_dataset(const std::filesystem::path& dir, const Dataset& dataset, bool gzip,
                       IdxNaming naming = IdxNaming::kOfficial);

// Writes a MATLAB v5 file (zlib-compressed variables) as SVHN does: X uint8 with `x_dims`
// (H, W, C, N), `x` in MATLAB's column-major order, and y double N x 1.
void write_svhn_mat(const std::filesystem::path& path, const std::vector<uint8_t>& x, const std::vector<size_t>& x_dims,
                    const std::vector<double>& y);

// Writes a 3-channel dataset as train_32x32.mat and test_32x32.mat in `dir` (label 0 as 10).
void write_svhn_dataset(const std::filesystem::path& dir, const Dataset& dataset);

// Binary PPM (P6) for RGB images, PGM (P5) for grey ones, maxval 255.
std::vector<uint8_t> encode_ppm(const Image& image);

// Writes `image` in the format its extension names: .png, .jpg/.jpeg, .ppm or .pgm.
void write_image_file(const std::filesystem::path& path, const Image& image);

// One GTSRB image with its CSV row.
struct GtsrbSample {
  Image image;
  int64_t x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // Roi in CSV coordinates, x2/y2 exclusive
  int64_t class_id = 0;
  int64_t csv_width = 0, csv_height = 0;  // Width/Height written to the CSV; 0: the image's
  std::string file;                       // training file name (TTTTT_FFFFF.ppm); empty: 00000_<index>.ppm
};

// The text of a GTSRB CSV listing `samples` as the files named by `file_name(i)`: `;`-separated
// with CRLF line ends, and the ClassId column only `with_class_id` (GT-final_test.test.csv,
// shipped with the test images, has none).
std::string gtsrb_csv(const std::vector<GtsrbSample>& samples, const std::vector<std::string>& file_names,
                      bool with_class_id = true);

// Writes the training part of the official layout: Final_Training/Images/000NN/{GT-000NN.csv,
// *.ppm}, each file named by its sample's `file`.
void write_gtsrb_training(const std::filesystem::path& dir, const std::vector<GtsrbSample>& train);

// Writes the test images as Final_Test/Images/<i, 5 digits>.ppm and, unless `csv_dir` is
// empty, their ground truth as `csv_dir`/GT-final_test.csv.
void write_gtsrb_test(const std::filesystem::path& dir, const std::vector<GtsrbSample>& test,
                      const std::filesystem::path& csv_dir);

// Writes the official GTSRB layout: the training part and the test part with its ground
// truth in Final_Test/Images/, where the official download puts neither.
void write_gtsrb_tree(const std::filesystem::path& dir, const std::vector<GtsrbSample>& train,
                      const std::vector<GtsrbSample>& test);

// Writes DIR/train/<class name>/<i><extension> and DIR/<test_folder>/... for every example
// ("val" for ImageNet's naming).
void write_image_folder(const std::filesystem::path& dir, const Dataset& dataset, const std::string& extension = ".png",
                        const std::string& test_folder = "test");

// Writes the training split alone as DIR/<class name>/<i><extension>: a folder with no split.
void write_class_folders(const std::filesystem::path& dir, const Dataset& dataset,
                         const std::string& extension = ".png");

// A whole `defuse run` that takes seconds (the end-to-end tests): writes a toy dataset (IDX
// files, 240 + 60 images of 12x12, 4 classes) to `dir`/data and its configuration (tiny
// models, few seeds, labels from the seeds) to `dir`/tiny.toml, and returns that file.
std::filesystem::path write_tiny_run(const std::filesystem::path& dir);

}  // namespace defuse::test
