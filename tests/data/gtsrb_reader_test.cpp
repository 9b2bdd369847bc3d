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

constexpr const char* kHeader = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n";

std::string csv_error(const std::string& text) {
  return error_message<DataError>([&] { parse_gtsrb_csv(text, "GT-00001.csv"); });
}

// An RGB image whose every pixel differs: (x, y, c) -> x + 16 y + 100 c (mod 256).
Image numbered_image(int64_t width, int64_t height) {
  Image image{width, height, 3, {}};
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int64_t c = 0; c < 3; ++c)
        image.pixels.push_back(static_cast<uint8_t>(x + 16 * y + 100 * c));
  return image;
}

// A sample whose image is `background` except the box (x1, y1)-(x2, y2) in `sign` colour.
test::GtsrbSample two_colour_sample(int64_t size, int64_t x1, int64_t y1, int64_t x2, int64_t y2,
                                    int64_t class_id) {
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
  test::write_gtsrb_tree(
      dir,
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
      std::string(kHeader) +
          "00000_00000.ppm;29;30;5;6;24;25;0\r\n00000_00001.ppm;30;30;5;5;25;25;42\r\n",
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
  EXPECT_EQ(csv_error(h + "a.ppm;29;3x;5;6;24;25;0\r\n"),
            "data: GT-00001.csv line 2: bad Height '3x'");
  EXPECT_TRUE(
      contains(csv_error(h + "a.ppm;29;30;5;6;24;25\r\n"), "line 2: has 7 fields, the header 8"));
  EXPECT_TRUE(contains(csv_error(h + "a.ppm;29;30;-5;6;24;25;0\r\n"), "bad Roi.X1 '-5'"));
  EXPECT_TRUE(contains(csv_error(h + "a.ppm;29;30;;6;24;25;0\r\n"), "bad Roi.X1 ''"));
  EXPECT_TRUE(
      contains(csv_error(h + "a.ppm;99999999999999999999;30;5;6;24;25;0\r\n"), "bad Width"));
  EXPECT_TRUE(contains(csv_error(h + "../x.ppm;29;30;5;6;24;25;0\r\n"), "bad Filename '../x.ppm'"));
}

TEST(GtsrbCsv, RejectsClassIdOutOfRange) {
  EXPECT_EQ(
      csv_error(std::string(kHeader) + "a.ppm;29;30;5;6;24;25;0\r\nb.ppm;29;30;5;6;24;25;43\r\n"),
      "data: GT-00001.csv line 3: ClassId 43 is outside 0..42");
}

TEST(GtsrbCsv, RejectsEmptyOrOutsideRoi) {
  const std::string h = kHeader;
  EXPECT_TRUE(contains(csv_error(h + "a.ppm;29;30;24;6;24;25;0\r\n"),
                       "is empty or outside the 29x30 image"));
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
        ASSERT_EQ(gtsrb.test.images[(c * 6 + y) * 6 + x],
                  static_cast<uint8_t>((x + 2) + 16 * (y + 3) + 100 * c));
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
  test::write_image_file(tmp.path() / "Final_Training" / "Images" / "00000" / "00000_00002.ppm",
                         grey);
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
  EXPECT_TRUE(contains(read_data_error(tmp.path()),
                       "ClassId 13 of 00000_00001.ppm disagrees with its folder 00014"));
}

TEST(GtsrbReader, ClassIdOutOfRangeIsDataError) {
  test::TempDir tmp;
  write_small_tree(tmp.path());
  test::write_file(tmp.path() / "Final_Test" / "Images" / "GT-final_test.csv",
                   std::string(kHeader) + "00000.ppm;20;20;5;5;15;15;43\r\n");
  EXPECT_TRUE(contains(read_data_error(tmp.path()),
                       "GT-final_test.csv line 2: ClassId 43 is outside 0..42"));
}

TEST(GtsrbReader, EmptyDatasetIsDataError) {
  test::TempDir tmp;
  test::write_file(tmp.path() / "Final_Training" / "Images" / "00000" / "GT-00000.csv",
                   std::string(kHeader));
  test::write_file(tmp.path() / "Final_Test" / "Images" / "GT-final_test.csv",
                   std::string(kHeader));
  EXPECT_TRUE(contains(read_data_error(tmp.path()), "no training images listed"));
}

}  // namespace
}  // namespace defuse
