#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
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

constexpr const char* kHeader = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n";

std::string csv_error(const std::string& text) {
  return error_message<DataError>([&] { parse_gtsrb_csv(text, "GT-00001.csv"); });
}

// An RGB image whose every pixel differs: (x, y, c) -> x + 16 y + 100 c (mod 256).
Image numbered_image(int64_t width, int64_t height) {
  Image image{width, height, 3, {}};
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int64_t c = 0; c < 3; ++c) image.pixels.push_back(static_cast<uint8_t>(x + 16 * y + 100 * c));
  return image;
}

// A sample whose image is `background` except the box (x1, y1)-(x2, y2) in `sign` colour.
test::GtsrbSample two_colour_sample(int64_t size, int64_t x1, int64_t y1, int64_t x2, int64_t y2, int64_t class_id) {
  test::GtsrbSample sample;
  sample.image = Image{size, size, 3, {}};
  for (int64_t y = 0; y < size; ++y)
    for (int64_t x = 0; x < size; ++x) {
      const bool sign = x >= x1 && x < x2 && y >= y1 && y < y2;
      for (uint8_t v : sign ? std::vector<uint8_t>{200, 10, 10} : std::vector<uint8_t>{0, 0, 250})
        sample.image.pixels.push_back(v);
    }
  sample.x1 = x1;
  sample.y1 = y1;
  sample.x2 = x2;
  sample.y2 = y2;
  sample.class_id = class_id;
  return sample;
}

// A valid tree: two training classes (0 and 14) and two test images.
void write_small_tree(const fs::path& dir) {
  test::write_gtsrb_tree(dir,
                         {two_colour_sample(20, 5, 5, 15, 15, 0), two_colour_sample(24, 5, 5, 19, 19, 14),
                          two_colour_sample(20, 5, 5, 15, 15, 0)},
                         {two_colour_sample(20, 5, 5, 15, 15, 14), two_colour_sample(30, 5, 5, 25, 25, 0)});
}

std::string read_data_error(const fs::path& dir) {
  return error_message<DataError>([&] { read_gtsrb(dir.string(), {}); });
}

std::string read_io_error(const fs::path& dir) {
  return error_message<IoError>([&] { read_gtsrb(dir.string(), {}); });
}

TEST(GtsrbCsv, ParsesCrlfRows) {
  const std::vector<GtsrbRow> rows = parse_gtsrb_csv(
      std::string(kHeader) + "00000_00000.ppm;29;30;5;6;24;25;0\r\n00000_00001.ppm;30;30;5;5;25;25;42\r\n",
      "GT-00000.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].filename, "00000_00000.ppm");
  EXPECT_EQ(rows[0].width, 29);
  EXPECT_EQ(rows[0].height, 30);
  EXPECT_EQ(rows[0].x1, 5);
  EXPECT_EQ(rows[0].y1, 6);
  EXPECT_EQ(rows[0].x2, 24);
  EXPECT_EQ(rows[0].y2, 25);
  EXPECT_EQ(rows[1].class_id, 42);
}

TEST(GtsrbCsv, AcceptsLfByteOrderMarkAndReorderedColumns) {
  const std::vector<GtsrbRow> rows = parse_gtsrb_csv(
      "\xEF\xBB\xBFWidth;Filename;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n40;a.ppm;30;1;2;3;4;"
      "7\n\n",
      "t.csv");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].filename, "a.ppm");
  EXPECT_EQ(rows[0].width, 40);
  EXPECT_EQ(rows[0].class_id, 7);
}

TEST(GtsrbCsv, RejectsMissingColumns) {
  // The test CSV without ground truth (GT-final_test.test.csv) has no ClassId column.
  const std::string message = csv_error("Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2\r\n");
  EXPECT_EQ(message, "data: GT-00001.csv line 1: the header has no ClassId column");
  EXPECT_TRUE(contains(csv_error(""), "line 1: the file is empty"));
}

TEST(GtsrbCsv, RejectsBadFields) {
  const std::string h = kHeader;
  EXPECT_EQ(csv_error(h + "a.ppm;29;3x;5;6;24;25;0\r\n"), "data: GT-00001.csv line 2: bad Height '3x'");
  EXPECT_TRUE(contains(csv_error(h + "a.ppm;29;30;5;6;24;25\r\n"), "line 2: has 7 fields, the header 8"));
  EXPECT_TRUE(contains(csv_error(h + "a.ppm;29;30;-5;6;24;25;0\r\n"), "bad Roi.X1 '-5'"));
  EXPECT_TRUE(contains(csv_error(h + "a.ppm;29;30;;6;24;25;0\r\n"), "bad Roi.X1 ''"));
  EXPECT_TRUE(contains(csv_error(h + "a.ppm;99999999999999999999;30;5;6;24;25;0\r\n"), "bad Width"));
  EXPECT_TRUE(contains(csv_error(h + "../x.ppm;29;30;5;6;24;25;0\r\n"), "bad Filename '../x.ppm'"));
}

TEST(GtsrbCsv, RejectsClassIdOutOfRange) {
  EXPECT_EQ(csv_error(std::string(kHeader) + "a.ppm;29;30;5;6;24;25;0\r\nb.ppm;29;30;5;6;24;25;43\r\n"),
            "data: GT-00001.csv line 3: ClassId 43 is outside 0..42");
}

TEST(GtsrbCsv, RejectsEmptyOrOutsideRoi) {
  const std::string h = kHeader;
  EXPECT_TRUE(contains(csv_error(h + "a.ppm;29;30;24;6;24;25;0\r\n"), "is empty or outside the 29x30 image"));
  EXPECT_TRUE(contains(csv_error(h + "a.ppm;29;30;5;6;30;25;0\r\n"), "Roi (5,6)-(30,25)"));
}

TEST(GtsrbReader, CropsTheRoiExactly) {
  test::TempDir tmp;
  test::GtsrbSample sample{numbered_image(12, 10), 2, 3, 8, 9, 3};
  test::write_gtsrb_tree(tmp.path(), {sample, sample}, {sample});
  DataOptions options;
  options.image_size = 6;  // the Roi's own size: no resampling
  const Dataset gtsrb = read_gtsrb(tmp.path().string(), options);
  ASSERT_EQ(gtsrb.image_size(), 3 * 6 * 6);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < 6; ++y)
      for (int64_t x = 0; x < 6; ++x)
        ASSERT_EQ(gtsrb.test.images[(c * 6 + y) * 6 + x], static_cast<uint8_t>((x + 2) + 16 * (y + 3) + 100 * c));
  EXPECT_EQ(gtsrb.test.labels[0], 3);
}

TEST(GtsrbReader, ScalesTheRoiToTheActualImageSize) {
  test::TempDir tmp;
  // The image was shrunk from 40x40 to 20x20 but the CSV keeps the original's coordinates.
  test::GtsrbSample sample = two_colour_sample(20, 5, 5, 15, 15, 1);
  sample.csv_width = sample.csv_height = 40;
  sample.x1 = sample.y1 = 10;
  sample.x2 = sample.y2 = 30;
  test::write_gtsrb_tree(tmp.path(), {sample}, {sample});
  DataOptions options;
  options.image_size = 4;
  const Dataset gtsrb = read_gtsrb(tmp.path().string(), options);
  for (int64_t i = 0; i < 16; ++i) {
    EXPECT_NEAR(gtsrb.train.images[i], 200, 1) << i;  // red: the sign, not the blue border
    EXPECT_NEAR(gtsrb.train.images[16 + i], 10, 1) << i;
    EXPECT_NEAR(gtsrb.train.images[32 + i], 10, 1) << i;
  }
}

TEST(GtsrbReader, ResizesToImageSizeWithTheOfficialClassNames) {
  test::TempDir tmp;
  write_small_tree(tmp.path());
  // A grey (P5) image among them becomes 3 channels.
  Image grey{20, 20, 1, std::vector<uint8_t>(400, 77)};
  test::write_image_file(tmp.path() / "Final_Training" / "Images" / "00000" / "00000_00002.ppm", grey);
  const Dataset gtsrb = load_dataset("gtsrb:" + tmp.path().string());
  EXPECT_EQ(gtsrb.name, "gtsrb");
  EXPECT_EQ(gtsrb.class_names, gtsrb_classes());
  EXPECT_EQ(gtsrb.channels, 3);
  EXPECT_EQ(gtsrb.height, 32);
  EXPECT_EQ(gtsrb.width, 32);
  EXPECT_EQ(gtsrb.train.labels, (std::vector<int64_t>{0, 0, 14}));  // class folders in order
  EXPECT_EQ(gtsrb.test.labels, (std::vector<int64_t>{14, 0}));
  EXPECT_EQ(gtsrb.train.images[1 * 3 * 32 * 32 + 2 * 32 * 32], 77);  // grey replicated to blue
}

TEST(GtsrbReader, MissingFilesAreIoErrors) {
  {
    test::TempDir tmp;
    EXPECT_TRUE(contains(read_io_error(tmp.path()), "Final_Training/Images not found"));
  }
  {
    test::TempDir tmp;
    write_small_tree(tmp.path());
    fs::remove(tmp.path() / "Final_Test" / "Images" / "GT-final_test.csv");
    EXPECT_TRUE(contains(read_io_error(tmp.path()), "GT-final_test.csv not found"));
  }
  {
    test::TempDir tmp;
    write_small_tree(tmp.path());
    fs::remove(tmp.path() / "Final_Training" / "Images" / "00014" / "GT-00014.csv");
    EXPECT_TRUE(contains(read_io_error(tmp.path()), "00014/GT-00014.csv not found"));
  }
  {
    test::TempDir tmp;
    write_small_tree(tmp.path());
    fs::remove(tmp.path() / "Final_Test" / "Images" / "00001.ppm");
    const std::string message = read_io_error(tmp.path());
    EXPECT_TRUE(contains(message, "data: ")) << message;
    EXPECT_TRUE(contains(message, "Final_Test/Images/00001.ppm: cannot open")) << message;
  }
}

TEST(GtsrbReader, CorruptImageIsDataErrorNamingIt) {
  test::TempDir tmp;
  write_small_tree(tmp.path());
  const fs::path image = tmp.path() / "Final_Training" / "Images" / "00014" / "00000_00001.ppm";
  fs::resize_file(image, fs::file_size(image) - 1);
  const std::string message = read_data_error(tmp.path());
  EXPECT_TRUE(contains(message, "data: " + image.string() + ": truncated pixel data")) << message;
}

TEST(GtsrbReader, ClassIdDisagreeingWithItsFolderIsDataError) {
  test::TempDir tmp;
  write_small_tree(tmp.path());
  test::write_file(tmp.path() / "Final_Training" / "Images" / "00014" / "GT-00014.csv",
                   std::string(kHeader) + "00000_00001.ppm;24;24;5;5;19;19;13\r\n");
  EXPECT_TRUE(contains(read_data_error(tmp.path()), "ClassId 13 of 00000_00001.ppm disagrees with its folder 00014"));
}

TEST(GtsrbReader, ClassIdOutOfRangeIsDataError) {
  test::TempDir tmp;
  write_small_tree(tmp.path());
  test::write_file(tmp.path() / "Final_Test" / "Images" / "GT-final_test.csv",
                   std::string(kHeader) + "00000.ppm;20;20;5;5;15;15;43\r\n");
  EXPECT_TRUE(contains(read_data_error(tmp.path()), "GT-final_test.csv line 2: ClassId 43 is outside 0..42"));
}

TEST(GtsrbReader, EmptyDatasetIsDataError) {
  test::TempDir tmp;
  test::write_file(tmp.path() / "Final_Training" / "Images" / "00000" / "GT-00000.csv", std::string(kHeader));
  test::write_file(tmp.path() / "Final_Test" / "Images" / "GT-final_test.csv", std::string(kHeader));
  EXPECT_TRUE(contains(read_data_error(tmp.path()), "no training images listed"));
}

// A training set of `tracks[k]` tracks of `frames` frames for class k: file TTTTT_FFFFF.ppm,
// a 4x4 image of one colour that names its class (red), track (green) and frame (blue).
std::vector<test::GtsrbSample> tracked_samples(const std::map<int64_t, int64_t>& tracks, int64_t frames) {
  std::vector<test::GtsrbSample> samples;
  for (const auto& [class_id, n_tracks] : tracks) {
    for (int64_t t = 0; t < n_tracks; ++t) {
      for (int64_t f = 0; f < frames; ++f) {
        test::GtsrbSample s;
        s.image = Image{4, 4, 3, {}};
        for (int i = 0; i < 16; ++i) {
          for (int64_t v : {class_id, t, f}) s.image.pixels.push_back(static_cast<uint8_t>(v));
        }
        s.x2 = s.y2 = 4;
        s.class_id = class_id;
        char file[32];
        std::snprintf(file, sizeof file, "%05lld_%05lld.ppm", static_cast<long long>(t), static_cast<long long>(f));
        s.file = file;
        samples.push_back(std::move(s));
      }
    }
  }
  return samples;
}

using Tracks = std::vector<std::pair<int64_t, int64_t>>;

// The (class, track) of each image of a split read with size=4 from tracked_samples.
Tracks tracks_of(const DataSplit& split) {
  Tracks tracks;
  for (int64_t i = 0; i < split.size(); ++i) {
    const uint8_t* image = split.images.data() + i * 3 * 16;  // [3, 4, 4]
    EXPECT_EQ(image[0], split.labels[i]);
    tracks.emplace_back(image[0], image[16]);
  }
  return tracks;
}

// Class -> the tracks of that class in `tracks`.
std::map<int64_t, std::set<int64_t>> by_class(const Tracks& tracks) {
  std::map<int64_t, std::set<int64_t>> out;
  for (const auto& [class_id, track] : tracks) out[class_id].insert(track);
  return out;
}

TEST(GtsrbTrackSplit, HoldsOutWholeTracksWhenThereIsNoFinalTest) {
  test::TempDir tmp;
  test::write_gtsrb_training(tmp.path(), tracked_samples({{0, 5}, {3, 10}, {14, 2}, {42, 1}}, 3));
  const Dataset gtsrb = load_dataset("gtsrb:" + tmp.path().string() + ",size=4");
  const auto train = tracks_of(gtsrb.train), test = tracks_of(gtsrb.test);
  EXPECT_EQ(train.size() + test.size(), 3u * 18u);
  auto train_tracks = by_class(train), test_tracks = by_class(test);
  for (const auto& [class_id, tracks] : test_tracks) {
    for (int64_t track : tracks) {
      EXPECT_EQ(train_tracks.at(class_id).count(track), 0u)
          << "track " << track << " of class " << class_id << " is on both sides";
    }
  }
  // Every frame of a held-out track is in the test split.
  EXPECT_EQ(test.size(), 3 * (test_tracks[0].size() + test_tracks[3].size() + test_tracks[14].size()));
  // 20% of 5, 10 and 2 tracks rounded, at least one; a class of one track stays in training.
  EXPECT_EQ(test_tracks[0].size(), 1u);
  EXPECT_EQ(test_tracks[3].size(), 2u);
  EXPECT_EQ(test_tracks[14].size(), 1u);
  EXPECT_EQ(test_tracks.count(42), 0u);
  EXPECT_EQ(train_tracks.at(42).size(), 1u);
  EXPECT_EQ(gtsrb.source, "GTSRB training split in " + tmp.path().string() +
                              ": no Final_Test, held out 20% of the tracks of each class (split-seed 0): 42 "
                              "train / 12 test images, Roi crops resized to 4x4");
}

TEST(GtsrbTrackSplit, HonoursTheHoldoutFractionPerClass) {
  test::TempDir tmp;
  test::write_gtsrb_training(tmp.path(), tracked_samples({{1, 4}, {2, 7}, {5, 20}}, 2));
  const Dataset gtsrb = load_dataset("gtsrb:" + tmp.path().string() + ",size=4,holdout=0.3");
  const auto test_tracks = by_class(tracks_of(gtsrb.test));
  EXPECT_EQ(test_tracks.at(1).size(), 1u);  // 1.2
  EXPECT_EQ(test_tracks.at(2).size(), 2u);  // 2.1
  EXPECT_EQ(test_tracks.at(5).size(), 6u);  // 6
  EXPECT_EQ(gtsrb.test.size(), 2 * (1 + 2 + 6));
  EXPECT_TRUE(contains(gtsrb.source, "held out 30% of the tracks of each class (split-seed 0)")) << gtsrb.source;
}

TEST(GtsrbTrackSplit, IsDeterministicForASeedAndChangesWithAnother) {
  test::TempDir tmp;
  test::write_gtsrb_training(tmp.path(), tracked_samples({{0, 12}, {1, 12}}, 2));
  const std::string spec = "gtsrb:" + tmp.path().string() + ",size=4,split-seed=";
  const Dataset first = load_dataset(spec + "7");
  const Dataset again = load_dataset(spec + "7");
  const Dataset other = load_dataset(spec + "8");
  EXPECT_EQ(again.train.images, first.train.images);
  EXPECT_EQ(again.test.images, first.test.images);
  EXPECT_EQ(again.test.labels, first.test.labels);
  EXPECT_EQ(other.test.size(), first.test.size());                              // the same counts...
  EXPECT_NE(by_class(tracks_of(other.test)), by_class(tracks_of(first.test)));  // ...other tracks
  EXPECT_TRUE(contains(other.source, "(split-seed 8)")) << other.source;
}

TEST(GtsrbTrackSplit, OddFileNamesAreTracksOfTheirOwn) {
  EXPECT_EQ(gtsrb_track("00012_00029.ppm"), "00012");
  EXPECT_EQ(gtsrb_track("12_3.ppm"), "12");
  EXPECT_EQ(gtsrb_track("00012.ppm"), "/00012");
  EXPECT_EQ(gtsrb_track("sign.ppm"), "/sign");
  EXPECT_EQ(gtsrb_track("00012_00029_b.ppm"), "/00012_00029_b");
  EXPECT_EQ(gtsrb_track("_00029.ppm"), "/_00029");
  EXPECT_EQ(gtsrb_track("00012_.ppm"), "/00012_");
  // A tree of odd names reads, each image on its own side.
  test::TempDir tmp;
  std::vector<test::GtsrbSample> samples = tracked_samples({{0, 1}, {1, 1}}, 3);
  for (size_t i = 0; i < samples.size(); ++i) samples[i].file = "img" + std::to_string(i) + ".ppm";
  test::write_gtsrb_training(tmp.path(), samples);
  const Dataset gtsrb = load_dataset("gtsrb:" + tmp.path().string() + ",size=4,holdout=0.34");
  EXPECT_EQ(gtsrb.train.size(), 4);
  EXPECT_EQ(gtsrb.test.size(), 2);
  EXPECT_EQ(gtsrb.test.labels, (std::vector<int64_t>{0, 1}));
}

TEST(GtsrbTrackSplit, NoClassWithTwoTracksIsDataError) {
  test::TempDir tmp;
  test::write_gtsrb_training(tmp.path(), tracked_samples({{0, 1}, {1, 1}}, 3));
  EXPECT_TRUE(contains(read_data_error(tmp.path()), "no class with two tracks to hold one out"));
}

TEST(GtsrbTrackSplit, GtWithoutFinalTestIsIoError) {
  test::TempDir tmp;
  test::write_gtsrb_training(tmp.path(), tracked_samples({{0, 2}}, 1));
  const std::string message =
      error_message<IoError>([&] { load_dataset("gtsrb:" + tmp.path().string() + ",gt=/tmp/GT-final_test.csv"); });
  EXPECT_TRUE(
      contains(message, "gt=/tmp/GT-final_test.csv is given but " + (tmp.path() / "Final_Test" / "Images").string()))
      << message;
}

// The test set of write_small_tree with the ground truth in `csv_dir` (none if empty).
void write_tree_with_csv_in(const fs::path& dir, const fs::path& csv_dir) {
  test::write_gtsrb_training(dir, {two_colour_sample(20, 5, 5, 15, 15, 0), two_colour_sample(24, 5, 5, 19, 19, 14)});
  test::write_gtsrb_test(dir, {two_colour_sample(20, 5, 5, 15, 15, 14), two_colour_sample(30, 5, 5, 25, 25, 0)},
                         csv_dir);
}

TEST(GtsrbTestCsv, IsFoundInEachOfTheThreePlaces) {
  for (const fs::path& place : {fs::path("Final_Test") / "Images", fs::path("Final_Test"), fs::path()}) {
    test::TempDir tmp;
    write_tree_with_csv_in(tmp.path(), tmp.path() / place);
    const Dataset gtsrb = load_dataset("gtsrb:" + tmp.path().string());
    EXPECT_EQ(gtsrb.test.labels, (std::vector<int64_t>{14, 0})) << place;
    const fs::path csv = tmp.path() / place / "GT-final_test.csv";
    EXPECT_EQ(gtsrb.source, "GTSRB in " + tmp.path().string() + ", test labels from " + csv.string() +
                                ", Roi crops resized to 32x32");
  }
}

TEST(GtsrbTestCsv, PlacesAreTriedInOrderAndGtOverridesThemAll) {
  test::TempDir tmp;
  write_tree_with_csv_in(tmp.path(), tmp.path() / "Final_Test" / "Images");
  // Other labels in each later place and in the gt= file tell which one was read.
  const fs::path final_test_csv = tmp.path() / "Final_Test" / "GT-final_test.csv";
  test::write_file(final_test_csv, std::string(kHeader) + "00000.ppm;20;20;5;5;15;15;1\r\n");
  test::write_file(tmp.path() / "GT-final_test.csv", std::string(kHeader) + "00000.ppm;20;20;5;5;15;15;2\r\n");
  const fs::path gt = tmp.path() / "mine" / "labels.csv";
  test::write_file(gt, std::string(kHeader) + "00001.ppm;30;30;5;5;25;25;3\r\n");
  const std::string spec = "gtsrb:" + tmp.path().string();
  EXPECT_EQ(load_dataset(spec).test.labels, (std::vector<int64_t>{14, 0}));
  const Dataset given = load_dataset(spec + ",gt=" + gt.string());
  EXPECT_EQ(given.test.labels, (std::vector<int64_t>{3}));  // rows name Final_Test/Images files
  EXPECT_TRUE(contains(given.source, "test labels from " + gt.string())) << given.source;
  fs::remove(tmp.path() / "Final_Test" / "Images" / "GT-final_test.csv");
  EXPECT_EQ(load_dataset(spec).test.labels, (std::vector<int64_t>{1}));
  fs::remove(final_test_csv);
  EXPECT_EQ(load_dataset(spec).test.labels, (std::vector<int64_t>{2}));
  const std::string message =
      error_message<IoError>([&] { load_dataset(spec + ",gt=" + (tmp.path() / "no.csv").string()); });
  EXPECT_EQ(message, "data: gtsrb: " + (tmp.path() / "no.csv").string() + " (gt=) not found");
}

TEST(GtsrbTestCsv, MissingGroundTruthNamesEveryPlaceLookedAt) {
  test::TempDir tmp;
  write_tree_with_csv_in(tmp.path(), fs::path());
  const std::string message = read_io_error(tmp.path());
  const std::string dir = tmp.path().string();
  EXPECT_EQ(message, "data: gtsrb: GT-final_test.csv not found in " + dir + "/Final_Test/Images/, " + dir +
                         "/Final_Test/, " + dir +
                         "/ (the test images' labels: the ground truth is a separate download, "
                         "GTSRB_Final_Test_GT.zip; unpack it into one of those places or give "
                         "its path with gt=PATH)");
}

TEST(GtsrbTestCsv, OnlyTheShippedTestListGetsItsOwnMessage) {
  test::TempDir tmp;
  write_tree_with_csv_in(tmp.path(), fs::path());
  const fs::path list = tmp.path() / "Final_Test" / "Images" / "GT-final_test.test.csv";
  test::write_file(list,
                   "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2\r\n"
                   "00000.ppm;20;20;5;5;15;15\r\n");
  const std::string message = read_io_error(tmp.path());
  EXPECT_TRUE(contains(message, "GT-final_test.csv not found in " + tmp.path().string() + "/Final_Test/Images/, "))
      << message;
  EXPECT_TRUE(contains(message, "only " + list.string() + ", the list of test images shipped " +
                                    "with them, which has no ClassId column and so is not the " + "ground truth"))
      << message;
  EXPECT_TRUE(contains(message, "separate download")) << message;
  EXPECT_TRUE(contains(message, "gt=PATH")) << message;
}

TEST(GtsrbTestCsv, FinalTestWithoutImagesIsIoError) {
  test::TempDir tmp;
  test::write_gtsrb_training(tmp.path(), tracked_samples({{0, 2}}, 1));
  test::write_file(tmp.path() / "Final_Test" / "GT-final_test.csv", std::string(kHeader));
  EXPECT_TRUE(contains(read_io_error(tmp.path()), (tmp.path() / "Final_Test" / "Images").string() +
                                                      " not found (the test "
                                                      "images; without any " +
                                                      (tmp.path() / "Final_Test").string()));
}

// The real training set, when present: $DEFUSE_GTSRB_DIR, else the unpacked copy of
// gtsrb-train.tar.xz beside the shared data or at /work/data/gtsrb. Loads it once (~2 s).
TEST(GtsrbReader, SplitsTheRealTrainingSetByTrack) {
  std::vector<fs::path> candidates = {test::shared_data_dir() / "gtsrb", "/work/data/gtsrb"};
  if (const char* env = std::getenv("DEFUSE_GTSRB_DIR"); env && *env) candidates = {env};
  fs::path dir;
  for (const fs::path& candidate : candidates) {
    if (dir.empty() && fs::is_directory(candidate / "Final_Training" / "Images")) dir = candidate;
  }
  if (dir.empty()) GTEST_SKIP() << "real GTSRB not found (set DEFUSE_GTSRB_DIR)";
  if (fs::exists(dir / "Final_Test")) GTEST_SKIP() << dir << " has a Final_Test: no track split";
  const Dataset gtsrb = load_dataset("gtsrb:" + dir.string());
  std::printf("%s\n", gtsrb.source.c_str());
  RecordProperty("train_images", std::to_string(gtsrb.train.size()));
  RecordProperty("test_images", std::to_string(gtsrb.test.size()));
  EXPECT_EQ(gtsrb.train.size() + gtsrb.test.size(), 39209);
  // About 20% of the images, since a class's tracks are of similar length.
  EXPECT_NEAR(static_cast<double>(gtsrb.test.size()) / 39209, 0.2, 0.01);
  EXPECT_EQ(std::set<int64_t>(gtsrb.test.labels.begin(), gtsrb.test.labels.end()).size(), 43u);
  EXPECT_EQ(gtsrb.test.size(), 7830) << "the split of split-seed 0 changed";
}

}  // namespace
}  // namespace defuse
