#include <gtest/gtest.h>

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

std::string read_data_error(const fs::path& dir) {
  return error_message<DataError>([&] { read_image_folder(dir.string(), {}); });
}

TEST(ImageFolder, ReadsPngsKeepingTheirSizeAndGreyness) {
  test::TempDir tmp;
  const Dataset toy = test::make_toy_dataset(9, 6, 1, 7, 5, 3);
  test::write_image_folder(tmp.path(), toy, ".png");
  const Dataset folder = load_dataset("folder:" + tmp.path().string());
  EXPECT_EQ(folder.name, "folder");
  EXPECT_EQ(folder.class_names, toy.class_names);
  EXPECT_EQ(folder.channels, 1);
  EXPECT_EQ(folder.height, 7);
  EXPECT_EQ(folder.width, 5);
  // Files are read class by class in name order: compare as multisets per class.
  ASSERT_EQ(folder.train.size(), 9);
  for (int64_t i = 0; i < folder.train.size(); ++i) {
    const Image image = test::split_image(folder, folder.train, i);
    bool found = false;
    for (int64_t j = 0; j < toy.train.size() && !found; ++j) {
      found = toy.train.labels[j] == folder.train.labels[i] &&
              test::split_image(toy, toy.train, j).pixels == image.pixels;
    }
    EXPECT_TRUE(found) << "train image " << i;
  }
  EXPECT_EQ(folder.test.size(), 6);
}

TEST(ImageFolder, ReadsRgbPpmAndJpeg) {
  for (const std::string extension : {".ppm", ".jpg"}) {
    test::TempDir tmp;
    const Dataset toy = test::make_toy_dataset(4, 2, 3, 8, 8, 2);
    test::write_image_folder(tmp.path(), toy, extension);
    const Dataset folder = read_image_folder(tmp.path().string(), {});
    EXPECT_EQ(folder.channels, 3) << extension;
    EXPECT_EQ(folder.image_size(), 3 * 8 * 8) << extension;
    EXPECT_EQ(folder.train.labels, (std::vector<int64_t>{0, 0, 1, 1})) << extension;
    if (extension == ".ppm") {
      EXPECT_EQ(test::split_image(folder, folder.test, 0).pixels,
                test::split_image(toy, toy.test, 0).pixels);
    }
  }
}

TEST(ImageFolder, MixedSizesAreResizedToImageSize) {
  test::TempDir tmp;
  test::write_image_file(tmp.path() / "train" / "a" / "1.png",
                         Image{10, 6, 1, std::vector<uint8_t>(60, 9)});
  test::write_image_file(tmp.path() / "train" / "b" / "1.png",
                         Image{4, 4, 1, std::vector<uint8_t>(16, 9)});
  test::write_image_file(tmp.path() / "test" / "b" / "1.png",
                         Image{4, 4, 1, std::vector<uint8_t>(16, 9)});
  DataOptions options;
  options.image_size = 12;
  const Dataset folder = read_image_folder(tmp.path().string(), options);
  EXPECT_EQ(folder.height, 12);
  EXPECT_EQ(folder.width, 12);
  EXPECT_EQ(folder.channels, 1);
  EXPECT_EQ(folder.train.images, std::vector<uint8_t>(2 * 144, 9));
  EXPECT_TRUE(contains(folder.source, "resized to 12x12"));
}

TEST(ImageFolder, OneColourImageMakesAllThreeChannels) {
  test::TempDir tmp;
  test::write_image_file(tmp.path() / "train" / "a" / "1.png", Image{2, 2, 1, {1, 2, 3, 4}});
  test::write_image_file(tmp.path() / "train" / "b" / "1.ppm",
                         Image{2, 2, 3, std::vector<uint8_t>(12, 5)});
  test::write_image_file(tmp.path() / "test" / "a" / "1.pgm", Image{2, 2, 1, {6, 7, 8, 9}});
  const Dataset folder = read_image_folder(tmp.path().string(), {});
  EXPECT_EQ(folder.channels, 3);
  EXPECT_EQ(folder.test.images, (std::vector<uint8_t>{6, 7, 8, 9, 6, 7, 8, 9, 6, 7, 8, 9}));
}

TEST(ImageFolder, ClassesAreSortedTrainingFoldersAndTestMayHoldASubset) {
  test::TempDir tmp;
  const Image image{2, 2, 1, {1, 2, 3, 4}};
  for (const char* name : {"zebra", "ant", "moth"})
    test::write_image_file(tmp.path() / "train" / name / "x.png", image);
  test::write_image_file(tmp.path() / "test" / "moth" / "x.png", image);
  test::write_file(tmp.path() / "train" / "ant" / "notes.txt", std::string("not an image"));
  test::write_file(tmp.path() / "train" / "ant" / ".hidden.png", std::string("ignored"));
  const Dataset folder = read_image_folder(tmp.path().string(), {});
  EXPECT_EQ(folder.class_names, (std::vector<std::string>{"ant", "moth", "zebra"}));
  EXPECT_EQ(folder.train.labels, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(folder.test.labels, (std::vector<int64_t>{1}));
}

TEST(ImageFolder, TestClassMissingFromTrainingIsDataError) {
  test::TempDir tmp;
  const Image image{2, 2, 1, {1, 2, 3, 4}};
  test::write_image_file(tmp.path() / "train" / "a" / "x.png", image);
  test::write_image_file(tmp.path() / "train" / "b" / "x.png", image);
  test::write_image_file(tmp.path() / "test" / "c" / "x.png", image);
  EXPECT_TRUE(contains(read_data_error(tmp.path()), "test/c is not among the training classes"));
}

TEST(ImageFolder, EmptyClassFolderIsDataError) {
  test::TempDir tmp;
  test::write_image_folder(tmp.path(), test::make_toy_dataset(4, 2, 1, 3, 3, 2));
  fs::create_directories(tmp.path() / "train" / "class2");
  test::write_file(tmp.path() / "train" / "class2" / "readme.txt", std::string("no images"));
  EXPECT_TRUE(contains(read_data_error(tmp.path()), "train/class2 holds no images"));
}

TEST(ImageFolder, CorruptImageIsDataErrorNamingIt) {
  test::TempDir tmp;
  test::write_image_folder(tmp.path(), test::make_toy_dataset(4, 2, 1, 3, 3, 2));
  const fs::path bad = tmp.path() / "test" / "class1" / "1.png";
  test::write_file(bad, std::string("\x89PNG\r\n\x1a\n garbage", 16));
  const std::string message = read_data_error(tmp.path());
  EXPECT_TRUE(contains(message, "data: " + bad.string() + ": corrupt image")) << message;
}

TEST(ImageFolder, MissingSplitFolderIsIoError) {
  test::TempDir tmp;
  test::write_image_folder(tmp.path(), test::make_toy_dataset(4, 2, 1, 3, 3, 2));
  fs::remove_all(tmp.path() / "test");
  const std::string message =
      error_message<IoError>([&] { read_image_folder(tmp.path().string(), {}); });
  EXPECT_TRUE(contains(message, "data: folder: " + (tmp.path() / "test").string() + " not found"));
}

TEST(ImageFolder, EmptyDatasetIsDataError) {
  test::TempDir tmp;
  fs::create_directories(tmp.path() / "train");
  fs::create_directories(tmp.path() / "test");
  EXPECT_TRUE(contains(read_data_error(tmp.path()), "has no class folders"));
}

}  // namespace
}  // namespace defuse
