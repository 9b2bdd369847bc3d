// GTSRB, the German Traffic Sign Recognition Benchmark, in its official layout:
// Final_Training/Images/000NN/{GT-000NN.csv, *.ppm} and Final_Test/Images/*.ppm with the test
// ground truth GT-final_test.csv (a separate download), or the training set alone, of which
// whole tracks are held out. Each image is cropped to its Roi and resized to a square.
#include <algorithm>
#include <charconv>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "defuse/base/csv.h"
#include "defuse/base/error.h"
#include "defuse/base/image_io.h"
#include "defuse/base/utf8.h"
#include "defuse/data/dataset.h"
#include "defuse/data/holdout.h"

namespace defuse {
namespace {

namespace fs = std::filesystem;

// Larger than any GTSRB image side; bounds the numbers a CSV may hold.
constexpr int64_t kMaxCsvValue = 1 << 20;

// One split's rows with their image paths, ready to load.
struct GtsrbFiles {
  std::vector<std::string> paths;
  std::vector<GtsrbRow> rows;
};

// Adds the rows of `csv_path`, whose Filename column names files in `images_dir`.
void add_csv(const fs::path& csv_path, const fs::path& images_dir, GtsrbFiles& files) {
  const std::vector<uint8_t> bytes = read_file_bytes(csv_path.string(), "data");
  const std::vector<GtsrbRow> rows =
      parse_gtsrb_csv(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), csv_path.string());
  for (const GtsrbRow& row : rows) {
    files.paths.push_back((images_dir / row.filename).string());
    files.rows.push_back(row);
  }
}

constexpr const char* kTestCsvName = "GT-final_test.csv";
// Shipped with the test images: the same rows without ClassId, so not the ground truth.
constexpr const char* kTestListName = "GT-final_test.test.csv";

// The test ground truth: `gt_path` when given, else the first GT-final_test.csv found in
// Final_Test/Images/, Final_Test/ and DIR, the places users unpack the separate download to.
fs::path find_test_csv(const fs::path& dir, const std::string& gt_path) {
  if (!gt_path.empty()) {
    if (!fs::is_regular_file(gt_path)) {
      throw IoError("data: gtsrb: " + gt_path + " (gt=) not found");
    }
    return gt_path;
  }
  const std::vector<fs::path> places = {dir / "Final_Test" / "Images", dir / "Final_Test", dir};
  std::string looked, list;
  for (const fs::path& place : places) {
    if (fs::is_regular_file(place / kTestCsvName)) return place / kTestCsvName;
    looked += (looked.empty() ? "" : ", ") + place.string() + "/";
    if (list.empty() && fs::is_regular_file(place / kTestListName)) {
      list = (place / kTestListName).string();
    }
  }
  const std::string download =
      "the ground truth is a separate download, "
      "GTSRB_Final_Test_GT.zip; unpack it into one of those places or "
      "give its path with gt=PATH";
  if (!list.empty()) {
    throw IoError("data: gtsrb: " + std::string(kTestCsvName) + " not found in " + looked + "; only " + list +
                  ", the list of test images shipped with them, which has " +
                  "no ClassId column and so is not the ground truth (" + download + ")");
  }
  throw IoError("data: gtsrb: " + std::string(kTestCsvName) + " not found in " + looked +
                " (the test images' labels: " + download + ")");
}

// Moves the rows that `held_out` marks from `files` into `test`, keeping the order of both.
void split_files(GtsrbFiles& files, const std::vector<bool>& held_out, GtsrbFiles& test) {
  GtsrbFiles train;
  for (size_t i = 0; i < files.rows.size(); ++i) {
    GtsrbFiles& side = held_out[i] ? test : train;
    side.paths.push_back(std::move(files.paths[i]));
    side.rows.push_back(std::move(files.rows[i]));
  }
  files = std::move(train);
}

// Loads, crops and resizes a split's images in parallel into [N, 3, S, S].
void load_gtsrb_split(const GtsrbFiles& files, int64_t side, DataSplit& split) {
  const int64_t image_bytes = 3 * side * side;
  split.images.resize(files.rows.size() * image_bytes);
  split.labels.resize(files.rows.size());
  for_each_image_file(files.paths, "data", [&](size_t i, Image&& image) {
    const GtsrbRow& row = files.rows[i];
    // The Roi is in the coordinates of the CSV's Width x Height; copies in circulation are
    // often resized, so scale it to the actual image (rounding outwards keeps it non-empty).
    const int64_t x1 = row.x1 * image.width / row.width;
    const int64_t y1 = row.y1 * image.height / row.height;
    const int64_t x2 = (row.x2 * image.width + row.width - 1) / row.width;
    const int64_t y2 = (row.y2 * image.height + row.height - 1) / row.height;
    const Image sign = resize_image(crop_image(convert_channels(image, 3), x1, y1, x2 - x1, y2 - y1), side, side);
    copy_to_chw(sign, split.images.data() + i * image_bytes);
    split.labels[i] = row.class_id;
  });
}

}  // namespace

std::vector<GtsrbRow> parse_gtsrb_csv(std::string_view text, const std::string& what) {
  size_t line_number = 0;
  auto fail = [&](const std::string& problem) {
    throw DataError("data: " + what + " line " + std::to_string(line_number) + ": " + problem);
  };
  // GTSRB's files are `;`-separated without quoting (a quote is part of its field), read line
  // by line rather than as RFC 4180 CSV (base/csv.h).
  LineReader lines(strip_utf8_bom(text));
  std::map<std::string_view, size_t> columns;
  size_t num_columns = 0;
  std::vector<GtsrbRow> rows;
  for (std::string_view line; lines.next(line);) {
    line_number = static_cast<size_t>(lines.number());
    if (line.empty()) continue;
    const std::vector<std::string_view> fields = split_fields(line, ';');
    if (columns.empty()) {  // the header row
      for (size_t i = 0; i < fields.size(); ++i) columns.emplace(fields[i], i);
      num_columns = fields.size();
      for (const char* name : {"Filename", "Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId"}) {
        if (!columns.count(name)) fail(std::string("the header has no ") + name + " column");
      }
      continue;
    }
    if (fields.size() != num_columns) {
      fail("has " + std::to_string(fields.size()) + " fields, the header " + std::to_string(num_columns));
    }
    auto number = [&](const char* name) {
      const std::string_view field = fields[columns.at(name)];
      int64_t value = -1;
      const auto [end_ptr, error] = std::from_chars(field.data(), field.data() + field.size(), value);
      if (field.empty() || error != std::errc() || end_ptr != field.data() + field.size() || value < 0 ||
          value > kMaxCsvValue) {
        fail(std::string("bad ") + name + " '" + std::string(field) + "'");
      }
      return value;
    };
    GtsrbRow row;
    row.filename = std::string(fields[columns.at("Filename")]);
    if (row.filename.empty() || row.filename.find_first_of("/\\") != std::string::npos || row.filename == "." ||
        row.filename == "..") {
      fail("bad Filename '" + row.filename + "' (expected a file name in the CSV's directory)");
    }
    row.width = number("Width");
    row.height = number("Height");
    row.x1 = number("Roi.X1");
    row.y1 = number("Roi.Y1");
    row.x2 = number("Roi.X2");
    row.y2 = number("Roi.Y2");
    row.class_id = number("ClassId");
    if (row.x1 >= row.x2 || row.y1 >= row.y2 || row.x2 > row.width || row.y2 > row.height) {
      fail("Roi (" + std::to_string(row.x1) + "," + std::to_string(row.y1) + ")-(" + std::to_string(row.x2) + "," +
           std::to_string(row.y2) + ") is empty or outside the " + std::to_string(row.width) + "x" +
           std::to_string(row.height) + " image");
    }
    if (row.class_id >= static_cast<int64_t>(gtsrb_classes().size())) {
      fail("ClassId " + std::to_string(row.class_id) + " is outside 0.." + std::to_string(gtsrb_classes().size() - 1));
    }
    rows.push_back(std::move(row));
  }
  if (columns.empty()) {
    line_number = 1;
    fail("the file is empty (expected a header row)");
  }
  return rows;
}

std::string gtsrb_track(const std::string& filename) {
  const std::string stem = fs::path(filename).stem().string();
  const size_t underscore = stem.find('_');
  auto digits = [](std::string_view text) {
    return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (underscore != std::string::npos && digits(std::string_view(stem).substr(0, underscore)) &&
      digits(std::string_view(stem).substr(underscore + 1))) {
    return stem.substr(0, underscore);
  }
  return "/" + stem;
}

Dataset read_gtsrb(const std::string& dir, const DataOptions& options) {
  options.validate();
  const fs::path train_root = fs::path(dir) / "Final_Training" / "Images";
  const fs::path test_dir = fs::path(dir) / "Final_Test";
  const fs::path test_images = test_dir / "Images";
  if (!fs::is_directory(train_root)) {
    throw IoError("data: gtsrb: " + train_root.string() + " not found (expected the official " +
                  "layout DIR/Final_Training/Images/000NN/)");
  }
  // Find the test ground truth before reading anything, so that a missing file fails at once.
  const bool has_test = fs::exists(test_dir);
  fs::path test_csv;
  if (has_test) {
    if (!fs::is_directory(test_images)) {
      throw IoError("data: gtsrb: " + test_images.string() + " not found (the test images; " + "without any " +
                    test_dir.string() + ", tracks of the training set are " + "held out instead)");
    }
    test_csv = find_test_csv(dir, options.gt_path);
  } else if (!options.gt_path.empty()) {
    throw IoError("data: gtsrb: gt=" + options.gt_path + " is given but " + test_images.string() +
                  ", the test images its rows name, not found");
  }

  std::vector<fs::path> class_dirs;
  for (const fs::directory_entry& entry : fs::directory_iterator(train_root)) {
    if (entry.is_directory()) class_dirs.push_back(entry.path());
  }
  std::sort(class_dirs.begin(), class_dirs.end());
  GtsrbFiles train_files, test_files;
  for (const fs::path& class_dir : class_dirs) {
    const std::string name = class_dir.filename().string();
    int64_t class_id = -1;
    const auto [end_ptr, error] = std::from_chars(name.data(), name.data() + name.size(), class_id);
    if (name.empty() || error != std::errc() || end_ptr != name.data() + name.size()) {
      throw DataError("data: gtsrb: unexpected folder " + class_dir.string() +
                      " (class folders are named 00000, 00001, ...)");
    }
    const fs::path csv = class_dir / ("GT-" + name + ".csv");
    if (!fs::is_regular_file(csv)) throw IoError("data: gtsrb: " + csv.string() + " not found");
    const size_t first = train_files.rows.size();
    add_csv(csv, class_dir, train_files);
    for (size_t i = first; i < train_files.rows.size(); ++i) {
      if (train_files.rows[i].class_id != class_id) {
        throw DataError("data: " + csv.string() + ": ClassId " + std::to_string(train_files.rows[i].class_id) + " of " +
                        train_files.rows[i].filename + " disagrees with its folder " + name);
      }
    }
  }
  if (train_files.rows.empty()) {
    throw DataError("data: gtsrb: no training images listed under " + train_root.string());
  }

  const std::string crops =
      "Roi crops resized to " + std::to_string(options.image_size) + "x" + std::to_string(options.image_size);
  Dataset dataset;
  dataset.name = "gtsrb";
  if (has_test) {
    add_csv(test_csv, test_images, test_files);
    if (test_files.rows.empty()) {
      throw DataError("data: " + test_csv.string() + " lists no images");
    }
    dataset.source = "GTSRB in " + dir + ", test labels from " + test_csv.string() + ", " + crops;
  } else {
    // The frames of a track are near-duplicates of one sign: a split by image would put copies
    // of training images in the test split, so whole tracks are held out.
    std::vector<int64_t> labels;
    std::vector<std::string> tracks;
    for (const GtsrbRow& row : train_files.rows) {
      labels.push_back(row.class_id);
      tracks.push_back(gtsrb_track(row.filename));
    }
    split_files(train_files, hold_out_groups(labels, tracks, options.holdout, options.split_seed), test_files);
    if (test_files.rows.empty()) {
      throw DataError("data: gtsrb: " + train_root.string() + " has no Final_Test beside it and " +
                      "no class with two tracks to hold one out as the test split");
    }
    dataset.source = "GTSRB training split in " + dir + ": no Final_Test, " +
                     describe_holdout(options, "tracks", train_files.rows.size(), test_files.rows.size()) + ", " +
                     crops;
  }
  dataset.class_names = gtsrb_classes();
  dataset.channels = 3;
  dataset.height = dataset.width = options.image_size;
  load_gtsrb_split(train_files, options.image_size, dataset.train);
  load_gtsrb_split(test_files, options.image_size, dataset.test);
  dataset.validate();
  return dataset;
}

}  // namespace defuse
