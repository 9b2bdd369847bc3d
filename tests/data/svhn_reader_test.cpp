#include <gtest/gtest.h>
#include <matio.h>

#include <filesystem>
#include <memory>

#include "defuse/base/error.h"
#include "defuse/base/image_io.h"
#include "defuse/data/dataset.h"
#include "support/test_support.h"

namespace defuse {
namespace {

namespace fs = std::filesystem;
using test::contains;
using test::error_message;

// A distinct value for every (row, column, channel, image) of a 4-row, 3-column image:
// swapping any two axes changes the value found at a position.
uint8_t pattern(size_t row, size_t col, size_t channel, size_t image) {
  return static_cast<uint8_t>(1 + row + 4 * col + 12 * channel + 36 * image);
}

// Writes H=4 x W=3 x C=3 x N images in MATLAB's column-major order, as SVHN's X is stored:
// element (row, col, channel, image) at row + 4*(col + 3*(channel + 3*image)).
void write_pattern_mat(const fs::path& path, size_t n, const std::vector<double>& y) {
  std::vector<uint8_t> x(4 * 3 * 3 * n);
  for (size_t i = 0; i < n; ++i)
    for (size_t c = 0; c < 3; ++c)
      for (size_t col = 0; col < 3; ++col)
        for (size_t row = 0; row < 4; ++row) x[row + 4 * (col + 3 * (c + 3 * i))] = pattern(row, col, c, i);
  test::write_svhn_mat(path, x, {4, 3, 3, n}, y);
}

std::string read_error(const fs::path& dir) {
  return error_message<DataError>([&] { read_svhn(dir.string()); });
}

TEST(SvhnReader, ConvertsMatlabColumnMajorToNchw) {
  test::TempDir tmp;
  write_pattern_mat(tmp.path() / "train_32x32.mat", 2, {1, 2});
  write_pattern_mat(tmp.path() / "test_32x32.mat", 1, {3});
  const Dataset svhn = read_svhn(tmp.path().string());
  ASSERT_EQ(svhn.channels, 3);
  ASSERT_EQ(svhn.height, 4);  // MATLAB rows are image rows
  ASSERT_EQ(svhn.width, 3);
  ASSERT_EQ(svhn.train.size(), 2);
  for (size_t i = 0; i < 2; ++i)
    for (size_t c = 0; c < 3; ++c)
      for (size_t row = 0; row < 4; ++row)
        for (size_t col = 0; col < 3; ++col)
          ASSERT_EQ(svhn.train.images[((i * 3 + c) * 4 + row) * 3 + col], pattern(row, col, c, i))
              << "image " << i << " channel " << c << " row " << row << " col " << col;
  EXPECT_EQ(svhn.test.images[0], pattern(0, 0, 0, 0));  // a single image (N = 1) reads too
}

TEST(SvhnReader, RoundTripsAToyDatasetAndMapsLabelTenToZero) {
  test::TempDir tmp;
  const Dataset toy = test::make_toy_dataset(25, 11, 3, 8, 8, 10);
  test::write_svhn_dataset(tmp.path(), toy);
  const Dataset svhn = load_dataset("svhn:" + tmp.path().string());
  EXPECT_EQ(svhn.name, "svhn");
  EXPECT_EQ(svhn.class_names, digit_classes());
  EXPECT_EQ(svhn.train.images, toy.train.images);
  EXPECT_EQ(svhn.train.labels, toy.train.labels);  // includes label 0, stored as 10
  EXPECT_EQ(svhn.test.images, toy.test.images);
  EXPECT_EQ(svhn.test.labels, toy.test.labels);
}

TEST(SvhnReader, MissingFileIsIoError) {
  test::TempDir tmp;
  write_pattern_mat(tmp.path() / "train_32x32.mat", 1, {1});
  const std::string message = error_message<IoError>([&] { read_svhn(tmp.path().string()); });
  EXPECT_TRUE(contains(message, "test_32x32.mat not found")) << message;
}

TEST(SvhnReader, NotAMatFileIsDataError) {
  test::TempDir tmp;
  test::write_file(tmp.path() / "train_32x32.mat", std::string(300, 'x'));
  write_pattern_mat(tmp.path() / "test_32x32.mat", 1, {1});
  const std::string message = read_error(tmp.path());
  EXPECT_TRUE(contains(message, "train_32x32.mat: not a readable MATLAB v5 file")) << message;
}

TEST(SvhnReader, TruncatedFileIsDataError) {
  test::TempDir tmp;
  const Dataset toy = test::make_toy_dataset(40, 10, 3, 16, 16, 10);
  const fs::path train = tmp.path() / "train_32x32.mat";
  // Cut inside y (the last variable), inside X, inside X's tag, and inside the file header.
  const std::vector<std::pair<int, std::string>> cuts = {
      {-20, "cannot read y"}, {-2, "cannot read X"}, {200, "has no variable X"}, {10, "too short"}};
  for (const auto& [cut, expected] : cuts) {
    test::write_svhn_dataset(tmp.path(), toy);
    fs::resize_file(train, cut == -2 ? fs::file_size(train) / 2 : cut < 0 ? fs::file_size(train) + cut : cut);
    const std::string message = read_error(tmp.path());
    EXPECT_TRUE(contains(message, "data: " + train.string() + ": " + expected)) << message;
  }
}

// A hand-made uncompressed MAT5 file whose X claims 32x32x3x10^6 bytes but holds 10.
TEST(SvhnReader, HugeClaimFailsBeforeAllocating) {
  std::string mat(116, ' ');
  mat.replace(0, 26, "MATLAB 5.0 MAT-file, test.");
  mat += std::string(8, '\0') + std::string("\x00\x01IM", 4);
  auto words = [&](std::initializer_list<uint32_t> values) {  // little-endian host
    for (uint32_t v : values) mat.append(reinterpret_cast<const char*>(&v), 4);
  };
  const uint32_t claimed = 32u * 32 * 3 * 1000000;
  words({14, 16 + 24 + 16 + 8 + claimed});   // miMATRIX element, its size
  words({6, 8, 9, 0});                       // array flags: uint8 class
  words({5, 16, 32, 32, 3, 1000000});        // dimensions
  words({1, 1});                             // name: one int8...
  mat += std::string("X\0\0\0\0\0\0\0", 8);  // ...padded to 8 bytes
  words({2, claimed});                       // the uint8 data...
  mat += std::string(10, '\x7f');            // ...cut short
  test::TempDir tmp;
  test::write_file(tmp.path() / "train_32x32.mat", mat);
  write_pattern_mat(tmp.path() / "test_32x32.mat", 1, {1});
  const std::string message = read_error(tmp.path());
  EXPECT_TRUE(contains(message, "X claims 32x32x3x1000000 bytes, more than the")) << message;
}

TEST(SvhnReader, LabelsOutsideOneToTenAreDataError) {
  test::TempDir tmp;
  write_pattern_mat(tmp.path() / "test_32x32.mat", 1, {1});
  for (double bad : {0.0, 11.0, 2.5, -1.0}) {
    write_pattern_mat(tmp.path() / "train_32x32.mat", 2, {1, bad});
    const std::string message = read_error(tmp.path());
    EXPECT_TRUE(contains(message, "train_32x32.mat: label ")) << message;
    EXPECT_TRUE(contains(message, "of example 1 is outside 1..10")) << message;
  }
}

TEST(SvhnReader, ImageAndLabelCountMismatchIsDataError) {
  test::TempDir tmp;
  write_pattern_mat(tmp.path() / "train_32x32.mat", 2, {1, 2, 3});
  write_pattern_mat(tmp.path() / "test_32x32.mat", 1, {1});
  EXPECT_TRUE(contains(read_error(tmp.path()), "X holds 2 images but y holds 3 labels"));
}

TEST(SvhnReader, WrongVariablesAreDataError) {
  test::TempDir tmp;
  write_pattern_mat(tmp.path() / "test_32x32.mat", 1, {1});
  // X with one channel.
  test::write_svhn_mat(tmp.path() / "train_32x32.mat", std::vector<uint8_t>(8, 1), {2, 2, 1, 2}, {1, 2});
  EXPECT_TRUE(contains(read_error(tmp.path()), "X must be H x W x 3 x N"));
  // No X at all: a file holding only an unrelated variable.
  {
    std::unique_ptr<mat_t, int (*)(mat_t*)> mat(
        Mat_CreateVer((tmp.path() / "train_32x32.mat").c_str(), nullptr, MAT_FT_MAT5), &Mat_Close);
    double value = 1;
    size_t dims[2] = {1, 1};
    matvar_t* var = Mat_VarCreate("z", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, dims, &value, 0);
    Mat_VarWrite(mat.get(), var, MAT_COMPRESSION_NONE);
    Mat_VarFree(var);
  }
  EXPECT_TRUE(contains(read_error(tmp.path()), "has no variable X"));
}

TEST(SvhnReader, MixedImageSizesAreDataError) {
  test::TempDir tmp;
  write_pattern_mat(tmp.path() / "train_32x32.mat", 1, {1});
  test::write_svhn_mat(tmp.path() / "test_32x32.mat", std::vector<uint8_t>(2 * 2 * 3, 1), {2, 2, 3, 1}, {1});
  EXPECT_TRUE(contains(read_error(tmp.path()), "images are 2x2 but training images are 3x4"));
}

}  // namespace
}  // namespace defuse
