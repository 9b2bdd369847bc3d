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

// Reader options, set from the spec's `,key=value` options (load_dataset) over the defaults of
// the caller's struct. Only gtsrb and folder take any.
struct DataOptions {
  // Output side for readers that resize (gtsrb always, folder when sizes differ), pixels; 32,
  // the usual input size of GTSRB classifiers. Key `size`.
  int64_t image_size = 32;
  // Share of each class held out as the test split when the dataset has no test split of its
  // own (gtsrb without Final_Test, an unsplit folder), in (0, 1); 0.2, the customary 80/20
  // split. Counted in GTSRB tracks, folder images. Unused where a test split exists. Key
  // `holdout`.
  double holdout = 0.2;
  // Seeds the choice of what is held out; fixed by default so that the same spec always gives
  // the same split. Key `split-seed`.
  uint64_t split_seed = 0;
  // gtsrb: the test ground-truth CSV (GT-final_test.csv), relative to the working directory
  // like DIR; empty: look in Final_Test/Images/, Final_Test/ and DIR. Key `gt`.
  std::string gt_path;

  // Throws ConfigError("data: ...") if image_size is outside 1..1024 or holdout outside (0, 1).
  void validate() const;
};

// A `--data` spec taken apart: the dataset kind, its directory and its options.
struct DataSpec {
  std::string kind;     // "fashion-mnist", "mnist", "svhn", "gtsrb", "folder"
  std::string dir;      // empty only for fashion-mnist (its Debian package's directory)
  DataOptions options;  // `defaults` with the spec's options applied, validated
};

// Parses a `--data` spec (syntax at load_dataset) over `defaults`. Throws ConfigError("data: ...")
// for an unknown kind, a missing directory, an option that is unknown, malformed, given twice,
// not taken by the kind, or whose value is bad; the message names the key and the keys the
// kind accepts.
DataSpec parse_data_spec(const std::string& spec, const DataOptions& defaults = {});

// Parses a `--data` spec and reads the dataset. A spec is `KIND[:DIR][,KEY=VALUE]...`: options
// follow the directory after commas (so DIR cannot contain a comma), and the spec as given is
// what the workspace records, so it reproduces the same data, held-out split included.
//   fashion-mnist[:DIR]   IDX files (gzip or raw); DIR defaults to
//                         /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist)
//   mnist:DIR             IDX files (gzip or raw)
//   svhn:DIR              train_32x32.mat / test_32x32.mat (MATLAB v5, through matio)
//   gtsrb:DIR             official GTSRB layout, Roi crop, resized to `size`: training images
//                         from DIR/Final_Training/Images/000NN/ (GT-000NN.csv each). With
//                         DIR/Final_Test/Images/, the test split is those images, labelled by
//                         GT-final_test.csv from `gt`, else the first found of Final_Test/Images/,
//                         Final_Test/ and DIR (its Filename column names files in
//                         Final_Test/Images/ wherever it sits). Without any DIR/Final_Test,
//                         `holdout` of the tracks of each class (TTTTT in TTTTT_FFFFF.ppm: the
//                         ~30 frames of one physical sign) are held out as the test split, all
//                         frames of a track on one side; other file names are each a track.
//   folder:DIR            image folders (PNG, JPEG, PPM, PGM) in one of three layouts:
//                         DIR/train/<class>/* with DIR/test/<class>/*; the same with DIR/val/
//                         (ImageNet's naming; test/ wins when both exist); or DIR/<class>/*
//                         with no split, of which `holdout` of each class's images are held
//                         out. A DIR/train/ with neither test/ nor val/ beside it is an error
//                         rather than a guess: folder:DIR/train splits its classes instead.
// Options (ConfigError for any other, or one the kind does not take):
//   size=N         gtsrb, folder: DataOptions::image_size (default 32)
//   holdout=F      gtsrb, folder: DataOptions::holdout (default 0.2)
//   split-seed=N   gtsrb, folder: DataOptions::split_seed (default 0)
//   gt=PATH        gtsrb: DataOptions::gt_path
// A held-out split is stratified: each class's groups (tracks, images) are shuffled by
// Fisher-Yates driven by SplitMix64 (hold_out_groups), and round(holdout x groups) of them go to
// the test split, at least one when the class has two or more and never all of them.
// dataset.source says which layout, files and split were used.
// `options` are the defaults that the spec's options override.
// Throws ConfigError for a bad spec, IoError for missing files, DataError for bad content.
Dataset load_dataset(const std::string& spec, const DataOptions& options = {});

// Individual readers (the spec parser dispatches to these).
Dataset read_idx_dataset(const std::string& dir, const std::string& name, const std::vector<std::string>& class_names);
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

// Which items of a dataset without a test split go to the held-out test split. Item i has
// class `labels[i]` and group `groups[i]`; the items of a group stay on one side (GTSRB: the
// frames of a track). For each class, its distinct groups are sorted, shuffled by Fisher-Yates
// (i from the last down to 1, j uniform in 0..i by rejection sampling) with a SplitMix64
// generator whose state starts at split_seed + 0x9E3779B97F4A7C15 x (class + 1), and the first
// round(holdout x groups) are held out, clamped to at least 1 when the class has two or more
// groups and to at most groups - 1. The result depends only on the seed and the (label, group)
// pairs, not on item order or platform. Returns, per item, whether it is held out.
std::vector<bool> hold_out_groups(const std::vector<int64_t>& labels, const std::vector<std::string>& groups,
                                  double holdout, uint64_t split_seed);

// The track of a GTSRB training file: "00012" for "00012_00029.ppm" (TTTTT_FFFFF, digits); any
// other name is a track of its own, keyed by "/" and its stem (no file name holds a '/', so it
// never joins a regular track).
std::string gtsrb_track(const std::string& filename);

// One row of a GTSRB ground-truth CSV.
struct GtsrbRow {
  std::string filename;                    // in the split's images folder
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
