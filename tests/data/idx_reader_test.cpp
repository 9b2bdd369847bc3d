#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "defuse/base/error.h"
#include "defuse/base/image_io.h"
#include "defuse/data/dataset.h"
#include "support/test_support.h"

namespace defuse {
namespace {

namespace fs = std::filesystem;
using test::contains;
using test::error_message;

std::string parse_error(const std::vector<uint8_t>& bytes) {
  return error_message<DataError>([&] { parse_idx(bytes.data(), bytes.size(), "f.idx"); });
}

// A toy MNIST-like directory: 1 channel, 7x5 images, 10 classes.
Dataset write_toy_mnist(const fs::path& dir, bool gzip, test::IdxNaming naming = test::IdxNaming::kOfficial) {
  Dataset toy = test::make_toy_dataset(30, 12, 1, 7, 5, 10);
  test::write_idx_dataset(dir, toy, gzip, naming);
  return toy;
}

void expect_same_content(const Dataset& read, const Dataset& expected) {
  EXPECT_EQ(read.channels, 1);
  EXPECT_EQ(read.height, expected.height);
  EXPECT_EQ(read.width, expected.width);
  EXPECT_EQ(read.train.images, expected.train.images);
  EXPECT_EQ(read.train.labels, expected.train.labels);
  EXPECT_EQ(read.test.images, expected.test.images);
  EXPECT_EQ(read.test.labels, expected.test.labels);
}

TEST(IdxReader, ReadsGzipFiles) {
  test::TempDir tmp;
  const Dataset toy = write_toy_mnist(tmp.path(), true);
  const Dataset read = read_idx_dataset(tmp.path().string(), "mnist", digit_classes());
  expect_same_content(read, toy);
  EXPECT_EQ(read.name, "mnist");
  EXPECT_TRUE(contains(read.source, tmp.path().string()));
}

TEST(IdxReader, ReadsRawFiles) {
  test::TempDir tmp;
  const Dataset toy = write_toy_mnist(tmp.path(), false);
  expect_same_content(read_idx_dataset(tmp.path().string(), "mnist", digit_classes()), toy);
}

TEST(IdxReader, ReadsDottedFileNames) {
  test::TempDir tmp;
  const Dataset toy = write_toy_mnist(tmp.path(), false, test::IdxNaming::kDotted);
  expect_same_content(read_idx_dataset(tmp.path().string(), "mnist", digit_classes()), toy);
}

TEST(IdxReader, MissingFileIsIoErrorNamingIt) {
  test::TempDir tmp;
  write_toy_mnist(tmp.path(), true);
  fs::remove(tmp.path() / "t10k-labels-idx1-ubyte.gz");
  const std::string message =
      error_message<IoError>([&] { read_idx_dataset(tmp.path().string(), "mnist", digit_classes()); });
  EXPECT_TRUE(contains(message, "data: mnist: t10k-labels-idx1-ubyte[.gz]")) << message;
  EXPECT_TRUE(contains(message, tmp.path().string())) << message;
}

TEST(IdxReader, MissingDirectoryIsIoError) {
  EXPECT_THROW(read_idx_dataset("/nonexistent/mnist", "mnist", digit_classes()), IoError);
}

TEST(IdxReader, WrongMagicNamesTheFile) {
  test::TempDir tmp;
  write_toy_mnist(tmp.path(), false);
  test::write_file(tmp.path() / "train-images-idx3-ubyte", std::string("GIF89a-not-idx"));
  const std::string message =
      error_message<DataError>([&] { read_idx_dataset(tmp.path().string(), "mnist", digit_classes()); });
  EXPECT_TRUE(contains(message, "train-images-idx3-ubyte: bad magic 0x47494638")) << message;
  EXPECT_EQ(message.rfind("data: ", 0), 0u);
}

TEST(IdxReader, TruncatedPayloadNamesTheFile) {
  test::TempDir tmp;
  write_toy_mnist(tmp.path(), false);
  const fs::path images = tmp.path() / "t10k-images-idx3-ubyte";
  fs::resize_file(images, fs::file_size(images) - 10);
  const std::string message =
      error_message<DataError>([&] { read_idx_dataset(tmp.path().string(), "mnist", digit_classes()); });
  EXPECT_TRUE(contains(message,
                       "t10k-images-idx3-ubyte: truncated payload: the header claims "
                       "12x7x5 (420 bytes) but 410 bytes follow"))
      << message;
}

TEST(IdxReader, TruncatedGzipStreamIsDataError) {
  test::TempDir tmp;
  write_toy_mnist(tmp.path(), true);
  const fs::path labels = tmp.path() / "train-labels-idx1-ubyte.gz";
  fs::resize_file(labels, fs::file_size(labels) - 12);
  const std::string message =
      error_message<DataError>([&] { read_idx_dataset(tmp.path().string(), "mnist", digit_classes()); });
  EXPECT_TRUE(contains(message, "train-labels-idx1-ubyte.gz: truncated gzip stream")) << message;
}

TEST(IdxReader, CorruptGzipStreamIsDataError) {
  test::TempDir tmp;
  write_toy_mnist(tmp.path(), true);
  const fs::path images = tmp.path() / "train-images-idx3-ubyte.gz";
  std::vector<uint8_t> bytes = read_file_bytes(images.string(), "test");
  for (size_t i = 12; i < bytes.size(); i += 3) bytes[i] ^= 0x5a;
  test::write_file(images, bytes);
  const std::string message =
      error_message<DataError>([&] { read_idx_dataset(tmp.path().string(), "mnist", digit_classes()); });
  EXPECT_TRUE(contains(message, "train-images-idx3-ubyte.gz: corrupt gzip stream")) << message;
}

TEST(IdxReader, ImageAndLabelCountMismatchIsDataError) {
  test::TempDir tmp;
  write_toy_mnist(tmp.path(), false);
  test::write_file(tmp.path() / "train-labels-idx1-ubyte", test::idx_bytes({29}, std::vector<uint8_t>(29, 1)));
  const std::string message =
      error_message<DataError>([&] { read_idx_dataset(tmp.path().string(), "mnist", digit_classes()); });
  EXPECT_TRUE(contains(message, "holds 29 labels but")) << message;
  EXPECT_TRUE(contains(message, "holds 30 images")) << message;
}

TEST(IdxReader, LabelOutOfRangeIsDataError) {
  test::TempDir tmp;
  write_toy_mnist(tmp.path(), false);
  std::vector<uint8_t> labels(12, 3);
  labels[4] = 10;
  test::write_file(tmp.path() / "t10k-labels-idx1-ubyte", test::idx_bytes({12}, labels));
  const std::string message =
      error_message<DataError>([&] { read_idx_dataset(tmp.path().string(), "mnist", digit_classes()); });
  EXPECT_TRUE(contains(message, "t10k-labels-idx1-ubyte: label 10 of example 4 is outside 0..9")) << message;
}

TEST(IdxReader, MixedImageSizesAreDataError) {
  test::TempDir tmp;
  write_toy_mnist(tmp.path(), false);
  test::write_file(tmp.path() / "t10k-images-idx3-ubyte",
                   test::idx_bytes({12, 5, 7}, std::vector<uint8_t>(12 * 35, 0)));
  const std::string message =
      error_message<DataError>([&] { read_idx_dataset(tmp.path().string(), "mnist", digit_classes()); });
  EXPECT_TRUE(contains(message, "test images are 7x5 but training images are 5x7")) << message;
}

TEST(IdxReader, WrongArrayRankIsDataError) {
  test::TempDir tmp;
  write_toy_mnist(tmp.path(), false);
  test::write_file(tmp.path() / "train-labels-idx1-ubyte", test::idx_bytes({30, 1}, std::vector<uint8_t>(30, 0)));
  const std::string message =
      error_message<DataError>([&] { read_idx_dataset(tmp.path().string(), "mnist", digit_classes()); });
  EXPECT_TRUE(contains(message, "expected labels [N], found an array of 30x1")) << message;
}

TEST(IdxReader, EmptyDatasetIsDataError) {
  test::TempDir tmp;
  test::write_idx_dataset(tmp.path(), test::make_toy_dataset(0, 0, 1, 4, 4, 10), true);
  const std::string message =
      error_message<DataError>([&] { read_idx_dataset(tmp.path().string(), "mnist", digit_classes()); });
  EXPECT_TRUE(contains(message, "the train split is empty")) << message;
}

TEST(IdxParse, ParsesDimsAndData) {
  const IdxArray array = [] {
    const std::vector<uint8_t> bytes = test::idx_bytes({2, 3}, {1, 2, 3, 4, 5, 6});
    return parse_idx(bytes.data(), bytes.size(), "f");
  }();
  EXPECT_EQ(array.dims, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(array.data, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6}));
}

TEST(IdxParse, RejectsBadHeaders) {
  EXPECT_TRUE(contains(parse_error({0, 0}), "data: f.idx: too short for an IDX header"));
  EXPECT_TRUE(contains(parse_error({1, 0, 8, 1, 0, 0, 0, 0}), "bad magic 0x01000801"));
  EXPECT_TRUE(contains(parse_error({0, 0, 8, 0}), "bad magic"));
  EXPECT_TRUE(contains(parse_error({0, 0, 0x0D, 1, 0, 0, 0, 0}), "element type 13"));
  EXPECT_TRUE(contains(parse_error({0, 0, 8, 3, 0, 0, 0, 1}), "truncated header"));
}

TEST(IdxParse, RejectsTrailingBytes) {
  std::vector<uint8_t> bytes = test::idx_bytes({2}, {1, 2});
  bytes.push_back(0);
  EXPECT_TRUE(contains(parse_error(bytes), "claims 2 (2 bytes) but 3 bytes follow"));
}

TEST(IdxParse, HugeClaimFailsFastWithoutAllocating) {
  // 2^31 images of 28x28 claimed, 10 bytes present; and a product that overflows 64 bits.
  std::vector<uint8_t> bytes = {0, 0, 8, 3, 0x80, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28};
  bytes.resize(bytes.size() + 10);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(contains(parse_error(bytes), "truncated payload"));
  std::vector<uint8_t> overflow = {0, 0, 8, 3};
  overflow.resize(16, 0xff);  // three dims of 2^32 - 1
  EXPECT_TRUE(contains(parse_error(overflow), "truncated payload"));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 0.1);
}

TEST(IdxGunzip, ReadsConcatenatedMembers) {
  std::vector<uint8_t> both = test::gzip_bytes({1, 2, 3});
  const std::vector<uint8_t> second = test::gzip_bytes({4, 5});
  both.insert(both.end(), second.begin(), second.end());
  EXPECT_EQ(gunzip(both.data(), both.size(), "two.gz"), (std::vector<uint8_t>{1, 2, 3, 4, 5}));
}

TEST(IdxGunzip, OutputBeyondTheInitialBufferGrowsIt) {
  // Long runs compress over 64:1, past the buffer first sized from the input.
  std::vector<uint8_t> big(3 << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i >> 16);
  const std::vector<uint8_t> gz = test::gzip_bytes(big);
  ASSERT_LT(gz.size() * 64 + (1 << 16), big.size());
  EXPECT_EQ(gunzip(gz.data(), gz.size(), "big.gz"), big);
}

// Real data, when the shared folder is present: MNIST as distributed (gzip, 60k + 10k).
TEST(IdxReader, ReadsRealMnistQuickly) {
  const fs::path dir = test::shared_data_dir() / "mnist";
  if (!fs::exists(dir / "train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "real MNIST not found in " << dir << " (set DEFUSE_SHARED_DATA)";
  }
  const auto start = std::chrono::steady_clock::now();
  const Dataset mnist = load_dataset("mnist:" + dir.string());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  RecordProperty("load_seconds", std::to_string(seconds));
  EXPECT_EQ(mnist.train.size(), 60000);
  EXPECT_EQ(mnist.test.size(), 10000);
  EXPECT_EQ(mnist.height, 28);
  EXPECT_EQ(mnist.width, 28);
  EXPECT_EQ(mnist.train.labels[0], 5);  // the famous first training digit
  EXPECT_EQ(mnist.test.labels[0], 7);
  EXPECT_LT(seconds, 5.0) << "MNIST should load in well under a second in a release build";
}

TEST(IdxReader, ReadsDebianFashionMnist) {
  const fs::path dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(dir / "train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
  }
  const Dataset fashion = load_dataset("fashion-mnist");
  EXPECT_EQ(fashion.train.size(), 60000);
  EXPECT_EQ(fashion.test.size(), 10000);
  EXPECT_EQ(fashion.image_size(), 784);
  EXPECT_EQ(fashion.class_names[9], "Ankle boot");
  EXPECT_EQ(fashion.train.labels[0], 9);  // the first training image is an ankle boot
}

}  // namespace
}  // namespace defuse
