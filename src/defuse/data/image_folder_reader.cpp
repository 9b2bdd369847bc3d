// Image folders (PNG, JPEG, binary PPM/PGM): DIR/train/<class>/* with DIR/test/<class>/* or
// DIR/val/<class>/*, or DIR/<class>/* alone, of which part of each class is held out.
#include <algorithm>
#include <cctype>
#include <filesystem>

#include "defuse/base/error.h"
#include "defuse/base/image_io.h"
#include "defuse/data/dataset.h"
#include "defuse/data/holdout.h"

namespace defuse {
namespace {

namespace fs = std::filesystem;

bool is_hidden(const fs::path& path) { return path.filename().string().rfind('.', 0) == 0; }

bool is_image_file(const fs::directory_entry& entry) {
  std::string extension = entry.path().extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return entry.is_regular_file() && !is_hidden(entry.path()) &&
         (extension == ".png" || extension == ".jpg" || extension == ".jpeg" || extension == ".ppm" ||
          extension == ".pgm");
}

// Sorted paths of the non-hidden entries of `dir` that satisfy `keep`.
template <typename Keep>
std::vector<fs::path> sorted_entries(const fs::path& dir, Keep keep) {
  std::vector<fs::path> paths;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    if (keep(entry) && !is_hidden(entry.path())) paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

std::vector<fs::path> class_dirs(const fs::path& split_dir) {
  return sorted_entries(split_dir, [](const fs::directory_entry& e) { return e.is_directory(); });
}

// A split's images, decoded as they are, their labels and file names.
struct FolderSplit {
  std::vector<Image> images;
  std::vector<int64_t> labels;
  std::vector<std::string> names;  // within the class folder
};

FolderSplit read_folder_split(const fs::path& split_dir, const std::vector<std::string>& class_names) {
  std::vector<std::string> paths;
  FolderSplit split;
  for (const fs::path& class_dir : class_dirs(split_dir)) {
    const std::string name = class_dir.filename().string();
    const auto found = std::find(class_names.begin(), class_names.end(), name);
    if (found == class_names.end()) {
      throw DataError("data: folder: class " + class_dir.string() + " is not among the training classes");
    }
    const std::vector<fs::path> files = sorted_entries(class_dir, is_image_file);
    if (files.empty()) {
      throw DataError("data: folder: class " + class_dir.string() + " holds no images (PNG, JPEG, PPM or PGM)");
    }
    for (const fs::path& file : files) {
      paths.push_back(file.string());
      split.labels.push_back(found - class_names.begin());
      split.names.push_back(file.filename().string());
    }
  }
  if (paths.empty()) throw DataError("data: folder: " + split_dir.string() + " has no class folders");
  split.images.resize(paths.size());
  for_each_image_file(paths, "data", [&](size_t i, Image&& image) { split.images[i] = std::move(image); });
  return split;
}

// Packs images into [N, C, H, W], converting channels and resizing where they differ.
void pack_split(FolderSplit& folder, const Dataset& dataset, DataSplit& split) {
  const int64_t image_bytes = dataset.image_size();
  split.images.resize(folder.images.size() * image_bytes);
  split.labels = std::move(folder.labels);
  for (size_t i = 0; i < folder.images.size(); ++i) {
    const Image image =
        resize_image(convert_channels(folder.images[i], dataset.channels), dataset.width, dataset.height);
    copy_to_chw(image, split.images.data() + i * image_bytes);
    folder.images[i] = Image();  // free as we go
  }
}

}  // namespace

Dataset read_image_folder(const std::string& dir, const DataOptions& options) {
  options.validate();
  const fs::path root = fs::path(dir), train_dir = root / "train", test_dir = root / "test", val_dir = root / "val";
  const bool has_train = fs::is_directory(train_dir), has_test = fs::is_directory(test_dir),
             has_val = fs::is_directory(val_dir);
  if (!fs::is_directory(root)) throw IoError("data: folder: " + dir + " not found");
  // A train/ alone is an error rather than a folder to split: it is more likely a test/ gone
  // missing than a class named "train", and folder:DIR/train says the other plainly.
  if (has_train && !has_test && !has_val) {
    throw IoError("data: folder: " + test_dir.string() + " not found, nor " + val_dir.string() +
                  " (DIR/train/ needs DIR/test/ or DIR/val/ beside it; to hold out part of " +
                  "train/ instead, give folder:" + train_dir.string() + ")");
  }
  if (!has_train && (has_test || has_val)) {
    throw IoError(
        "data: folder: " + train_dir.string() + " not found beside " + (has_test ? test_dir : val_dir).string() +
        " (expected DIR/train/<class>/ with DIR/test/<class>/ or DIR/val/<class>/, " + "or DIR/<class>/ alone)");
  }
  Dataset dataset;
  dataset.name = "folder";
  FolderSplit train, test;
  std::string layout;
  if (has_train) {
    for (const fs::path& class_dir : class_dirs(train_dir)) {
      dataset.class_names.push_back(class_dir.filename().string());
    }
    train = read_folder_split(train_dir, dataset.class_names);
    test = read_folder_split(has_test ? test_dir : val_dir, dataset.class_names);
    layout = has_test && has_val ? " (train/ and test/; val/ unused)"
             : has_test          ? " (train/ and test/)"
                                 : " (train/, and val/ as the test split)";
  } else {
    for (const fs::path& class_dir : class_dirs(root)) {
      dataset.class_names.push_back(class_dir.filename().string());
    }
    FolderSplit all = read_folder_split(root, dataset.class_names);
    // Each image is its own group: a folder says nothing of which images are near-duplicates.
    const std::vector<bool> held_out = hold_out_groups(all.labels, all.names, options.holdout, options.split_seed);
    for (size_t i = 0; i < all.images.size(); ++i) {
      FolderSplit& side = held_out[i] ? test : train;
      side.images.push_back(std::move(all.images[i]));
      side.labels.push_back(all.labels[i]);
      side.names.push_back(std::move(all.names[i]));
    }
    if (test.images.empty()) {
      throw DataError("data: folder: " + dir + " has no train/ or test/ and no class with two " +
                      "images to hold one out as the test split");
    }
    layout = " (class folders with no split: " +
             describe_holdout(options, "images", train.images.size(), test.images.size()) + ")";
  }

  // Keep the images' own size when they all share it, else resize all to a square; keep
  // grey images grey unless some image has colour.
  const Image& first = train.images.front();
  bool same_size = true, all_grey = true;
  for (const FolderSplit* split : {&train, &test}) {
    for (const Image& image : split->images) {
      same_size = same_size && image.width == first.width && image.height == first.height;
      all_grey = all_grey && image.channels == 1;
    }
  }
  dataset.channels = all_grey ? 1 : 3;
  dataset.width = same_size ? first.width : options.image_size;
  dataset.height = same_size ? first.height : options.image_size;
  dataset.source =
      "image folders in " + dir + layout +
      (same_size ? ""
                 : ", resized to " + std::to_string(options.image_size) + "x" + std::to_string(options.image_size));
  pack_split(train, dataset, dataset.train);
  pack_split(test, dataset, dataset.test);
  dataset.validate();
  return dataset;
}

}  // namespace defuse
