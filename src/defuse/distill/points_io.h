// Reading and writing tables of points (one row per point, one column per feature) for
// `defuse cluster` and the benchmarks: CSV text and NumPy .npy files. Torch-free.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace defuse {

// A row-major table of float64 values.
struct Points {
  std::vector<double> values;  // [rows, cols]
  int64_t rows = 0;
  int64_t cols = 0;
};

// Reads points from `path` by its extension: .csv (see read_points_csv) or .npy (see
// read_points_npy). Throws IoError if the file cannot be read, DataError if its content is
// malformed or holds NaN/Inf (the message names the file and the line or value), and
// ConfigError for another extension.
Points read_points(const std::filesystem::path& path);

// CSV: comma-separated numbers, the same count on every line; an optional header line (a
// first line with a field that is not a number); blank lines ignored; no quoting.
Points read_points_csv(const std::filesystem::path& path);
Points parse_points_csv(const std::string& text, const std::string& name);

// NumPy .npy (format versions 1–3): dtype float32 or float64 (either byte order),
// C or Fortran order, shape (N, D) or (N,) (read as D = 1). Values are converted to float64.
Points read_points_npy(const std::filesystem::path& path);
Points parse_points_npy(const std::string& bytes, const std::string& name);

// The bytes of a .npy file (version 1.0, '<f8', C order) holding `points`.
std::string points_npy_bytes(const Points& points);

}  // namespace defuse
