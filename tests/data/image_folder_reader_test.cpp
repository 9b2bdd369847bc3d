#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

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
      found =
          toy.train.labels[j] == folder.train.labels[i] && test::split_image(toy, toy.train, j).pixels == image.pixels;
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
      EXPECT_EQ(test::split_image(folder, folder.test, 0).pixels, test::split_image(toy, toy.test, 0).pixels);
    }
  }
}

TEST(ImageFolder, MixedSizesAreResizedToImageSize) {
  test::TempDir tmp;
  test::write_image_file(tmp.path() / "train" / "a" / "1.png", Image{10, 6, 1, std::vector<uint8_t>(60, 9)});
  test::write_image_file(tmp.path() / "train" / "b" / "1.png", Image{4, 4, 1, std::vector<uint8_t>(16, 9)});
  test::write_image_file(tmp.path() / "test" / "b" / "1.png", Image{4, 4, 1, std::vector<uint8_t>(16, 9)});
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
  test::write_image_file(tmp.path() / "train" / "b" / "1.ppm", Image{2, 2, 3, std::vector<uint8_t>(12, 5)});
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

TEST(ImageFolder, TrainWithoutTestOrValIsIoErrorPointingAtTheUnsplitReading) {
  test::TempDir tmp;
  test::write_image_folder(tmp.path(), test::make_toy_dataset(4, 2, 1, 3, 3, 2));
  fs::remove_all(tmp.path() / "test");
  const std::string message = error_message<IoError>([&] { read_image_folder(tmp.path().string(), {}); });
  const fs::path train = tmp.path() / "train";
  EXPECT_EQ(message, "data: folder: " + (tmp.path() / "test").string() + " not found, nor " +
                         (tmp.path() / "val").string() +
                         " (DIR/train/ needs DIR/test/ or DIR/val/ beside it; to hold out part of "
                         "train/ instead, give folder:" +
                         train.string() + ")");
  // Which works: train/'s classes, split.
  const Dataset folder = load_dataset("folder:" + train.string());
  EXPECT_EQ(folder.class_names, (std::vector<std::string>{"class0", "class1"}));
  EXPECT_EQ(folder.train.size() + folder.test.size(), 4);
}

TEST(ImageFolder, TestOrValWithoutTrainIsIoError) {
  test::TempDir tmp;
  test::write_image_folder(tmp.path(), test::make_toy_dataset(4, 2, 1, 3, 3, 2), ".png", "val");
  fs::remove_all(tmp.path() / "train");
  const std::string message = error_message<IoError>([&] { read_image_folder(tmp.path().string(), {}); });
  EXPECT_TRUE(contains(message, "data: folder: " + (tmp.path() / "train").string() + " not found beside " +
                                    (tmp.path() / "val").string()))
      << message;
  EXPECT_TRUE(contains(error_message<IoError>([&] { read_image_folder((tmp.path() / "none").string(), {}); }),
                       "data: folder: " + (tmp.path() / "none").string() + " not found"));
}

TEST(ImageFolder, ValIsTheTestSplitWhenThereIsNoTest) {
  test::TempDir tmp;
  const Dataset toy = test::make_toy_dataset(9, 6, 1, 4, 4, 3);
  test::write_image_folder(tmp.path(), toy, ".png", "val");
  const Dataset folder = load_dataset("folder:" + tmp.path().string());
  EXPECT_EQ(folder.train.size(), 9);
  EXPECT_EQ(folder.test.size(), 6);
  EXPECT_EQ(folder.test.labels, (std::vector<int64_t>{0, 0, 1, 1, 2, 2}));
  EXPECT_EQ(folder.source, "image folders in " + tmp.path().string() + " (train/, and val/ as the test split)");
}

TEST(ImageFolder, TestWinsOverValAndTheSourceSaysSo) {
  test::TempDir tmp;
  test::write_image_folder(tmp.path(), test::make_toy_dataset(9, 6, 1, 4, 4, 3));
  test::write_image_file(tmp.path() / "val" / "class0" / "x.png", Image{4, 4, 1, std::vector<uint8_t>(16, 1)});
  const Dataset folder = load_dataset("folder:" + tmp.path().string());
  EXPECT_EQ(folder.test.size(), 6);
  EXPECT_EQ(folder.source, "image folders in " + tmp.path().string() + " (train/ and test/; val/ unused)");
}

// DIR/<class>/* with no split: class k holds counts[k] grey 2x2 images, each of one value
// that no other image has, so that an image can be traced to its file.
void write_unsplit(const fs::path& dir, const std::vector<int>& counts) {
  for (size_t k = 0; k < counts.size(); ++k) {
    for (int i = 0; i < counts[k]; ++i) {
      const uint8_t value = static_cast<uint8_t>(20 * k + i);
      test::write_image_file(dir / ("c" + std::to_string(k)) / (std::to_string(i) + ".png"),
                             Image{2, 2, 1, std::vector<uint8_t>(4, value)});
    }
  }
}

// Class -> the image values of that class in `split` (images of 2x2 grey).
std::map<int64_t, std::set<int>> values_by_class(const DataSplit& split) {
  std::map<int64_t, std::set<int>> out;
  for (int64_t i = 0; i < split.size(); ++i) {
    EXPECT_TRUE(out[split.labels[i]].insert(split.images[4 * i]).second) << "twice: " << i;
  }
  return out;
}

TEST(ImageFolder, UnsplitFolderHoldsOutPartOfEveryClass) {
  test::TempDir tmp;
  write_unsplit(tmp.path(), {1, 2, 5, 10});
  const Dataset folder = load_dataset("folder:" + tmp.path().string());
  EXPECT_EQ(folder.class_names, (std::vector<std::string>{"c0", "c1", "c2", "c3"}));
  auto train = values_by_class(folder.train), test = values_by_class(folder.test);
  // 20% of 1, 2, 5 and 10 images, at least one of two or more, never all of them.
  EXPECT_EQ(test.count(0), 0u);
  EXPECT_EQ(test[1].size(), 1u);
  EXPECT_EQ(test[2].size(), 1u);
  EXPECT_EQ(test[3].size(), 2u);
  for (int k = 0; k < 4; ++k) {
    std::set<int> all = train[k];
    for (int value : test[k]) EXPECT_TRUE(all.insert(value).second) << "on both sides: " << value;
    EXPECT_EQ(all.size(), std::vector<size_t>({1, 2, 5, 10})[k]) << "class " << k;
  }
  EXPECT_EQ(folder.source, "image folders in " + tmp.path().string() +
                               " (class folders with no split: held out 20% of the images of "
                               "each class (split-seed 0): 14 train / 4 test images)");
}

TEST(ImageFolder, UnsplitFolderSplitIsDeterministicAndSeeded) {
  test::TempDir tmp;
  write_unsplit(tmp.path(), {12, 12});
  const std::string spec = "folder:" + tmp.path().string() + ",holdout=0.5";
  const Dataset first = load_dataset(spec);
  const Dataset again = load_dataset(spec + ",split-seed=0");
  const Dataset other = load_dataset(spec + ",split-seed=1");
  EXPECT_EQ(again.test.images, first.test.images);
  EXPECT_EQ(again.train.images, first.train.images);
  EXPECT_EQ(first.test.size(), 12);
  EXPECT_EQ(other.test.size(), 12);
  EXPECT_NE(values_by_class(other.test), values_by_class(first.test));
  EXPECT_TRUE(contains(other.source, "held out 50% of the images of each class (split-seed 1)")) << other.source;
}

TEST(ImageFolder, UnsplitFolderOfSingleImagesIsDataError) {
  test::TempDir tmp;
  write_unsplit(tmp.path(), {1, 1});
  EXPECT_TRUE(contains(read_data_error(tmp.path()), "no class with two images to hold one out"));
}

TEST(ImageFolder, EmptyDatasetIsDataError) {
  test::TempDir tmp;
  fs::create_directories(tmp.path() / "train");
  fs::create_directories(tmp.path() / "test");
  EXPECT_TRUE(contains(read_data_error(tmp.path()), "has no class folders"));
}

}  // namespace
}  // namespace defuse
