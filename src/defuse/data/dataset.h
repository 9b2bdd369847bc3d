// The Dataset type and the `--data SPEC` readers. Torch-free: images are uint8 in
// [N, C, H, W] order in one contiguous vector; the torch library converts to tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace defuse {

// One split (train or test) of a dataset.
struct DataSplit {
  std::vector<uint8_t> images;  // [N, C, H, W], row-major, 0..255
  std::vector<int64_t> labels;  // [N], 0..num_classes-1
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

struct Dataset {
  std::string name;    // "fashion-mnist", "mnist", "svhn", "gtsrb", "folder"
  std::string source;  // human description: reader, directory, files
  int64_t channels = 0, height = 0, width = 0;
  std::vector<std::string> class_names;  // index = label
  DataSplit train, test;

  int64_t num_classes() const { return static_cast<int64_t>(class_names.size()); }
  int64_t image_size() const { return channels * height * width; }
  // Throws DataError if sizes disagree or a label is out of range (a reader's last check).
  void validate() const;
};

// Options shared by readers that resize (gtsrb, folder).
struct DataOptions {
  int64_t image_size = 32;  // output side for readers that resize (gtsrb, folder), pixels

  // Throws ConfigError("data: ...") if image_size is outside 1..1024.
  void validate() const;
};

// Parses a `--data` spec and reads the dataset:
//   fashion-mnist[:DIR]   IDX files (gzip or raw); DIR defaults to
//                         /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist)
//   mnist:DIR             IDX files (gzip or raw)
//   svhn:DIR              train_32x32.mat / test_32x32.mat (MATLAB v5, through matio)
//   gtsrb:DIR             official GTSRB layout, Roi crop, resized to image_size
//   folder:DIR            DIR/train/<class>/* and DIR/test/<class>/* (PNG, JPEG, PPM)
// Throws ConfigError for an unknown spec, IoError for missing files, DataError for bad content.
Dataset load_dataset(const std::string& spec, const DataOptions& options = {});

// Individual readers (the spec parser dispatches to these).
Dataset read_idx_dataset(const std::string& dir, const std::string& name,
                         const std::vector<std::string>& class_names);
Dataset read_svhn(const std::string& dir);
Dataset read_gtsrb(const std::string& dir, const DataOptions& options);
Dataset read_image_folder(const std::string& dir, const DataOptions& options);

// Lower-level pieces of the readers, exposed for tests and fuzzing. They work on bytes in
// memory; `what` names the file in error messages ("data: <what>: <problem>").

// Reads a whole file, gunzipping it when it starts with the gzip magic bytes.
// Throws IoError if it cannot be read, DataError if the gzip stream is corrupt or truncated.
std::vector<uint8_t> read_data_file(const std::string& path);

// Decompresses a gzip stream (one or more members). Throws DataError if it is corrupt or
// truncated.
std::vector<uint8_t> gunzip(const uint8_t* bytes, size_t size, const std::string& what);

// An IDX array of unsigned bytes, the element type of every MNIST-style file.
struct IdxArray {
  std::vector<int64_t> dims;  // e.g. {N, 28, 28} for images, {N} for labels
  std::vector<uint8_t> data;  // row-major, product(dims) bytes
};

// Parses the (decompressed) bytes of an IDX file. Checks the claimed dims against the bytes
// present before allocating. Throws DataError on a bad magic, an element type other than
// uint8, or a payload shorter or longer than the header claims.
IdxArray parse_idx(const uint8_t* bytes, size_t size, const std::string& what);

// One row of a GTSRB ground-truth CSV.
struct GtsrbRow {
  std::string filename;                    // relative to the CSV's directory
  int64_t width = 0, height = 0;           // image size the Roi refers to, pixels
  int64_t x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // the sign's box; x2, y2 exclusive
  int64_t class_id = 0;                    // 0..42
};

// Parses a GTSRB CSV: `;`-separated, a header row naming the columns (any order; Filename,
// Width, Height, Roi.X1, Roi.Y1, Roi.X2, Roi.Y2 and ClassId required), CRLF or LF line
// ends. Throws DataError naming the line for a missing column, a bad number, an empty or
// out-of-image Roi, or a ClassId outside 0..42.
std::vector<GtsrbRow> parse_gtsrb_csv(std::string_view text, const std::string& what);

// The class names of the datasets whose names are fixed.
const std::vector<std::string>& fashion_mnist_classes();
const std::vector<std::string>& digit_classes();
const std::vector<std::string>& gtsrb_classes();

}  // namespace defuse
