#include "defuse/distill/points_io.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "defuse/base/atomic_file.h"
#include "defuse/base/csv.h"
#include "defuse/base/error.h"

namespace defuse {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return std::string(s.substr(a, b - a));
}

// Parses a whole field as a double; false if it is not exactly one number.
bool parse_double(std::string_view field, double& out) {
  const std::string t = trim(field);
  if (t.empty()) return false;
  errno = 0;
  char* end = nullptr;
  out = std::strtod(t.c_str(), &end);
  return end == t.c_str() + t.size();
}

}  // namespace

Points parse_points_csv(const std::string& text, const std::string& name) {
  Points p;
  // No quoting (a point table's fields are numbers): line by line, not RFC 4180 (base/csv.h).
  LineReader lines(text);
  bool first = true;
  for (std::string_view line; lines.next(line);) {
    const int64_t line_no = lines.number();
    if (trim(line).empty()) continue;
    const auto fields = split_fields(line, ',');
    std::vector<double> row(fields.size());
    bool numeric = true;
    size_t bad = 0;
    for (size_t j = 0; j < fields.size(); ++j) {
      if (!parse_double(fields[j], row[j])) {
        numeric = false;
        bad = j;
        break;
      }
    }
    if (first) {
      first = false;
      if (!numeric) {  // a header line: remember its width
        p.cols = static_cast<int64_t>(fields.size());
        continue;
      }
    }
    if (!numeric)
      throw DataError(
          fmt::format("{}: line {}, column {}: '{}' is not a number", name, line_no, bad + 1, trim(fields[bad])));
    if (p.cols == 0) p.cols = static_cast<int64_t>(row.size());
    if (static_cast<int64_t>(row.size()) != p.cols)
      throw DataError(fmt::format("{}: line {} has {} values, expected {}", name, line_no, row.size(), p.cols));
    for (size_t j = 0; j < row.size(); ++j)
      if (!std::isfinite(row[j]))
        throw DataError(
            fmt::format("{}: line {}, column {}: {} is not a finite number", name, line_no, j + 1, trim(fields[j])));
    p.values.insert(p.values.end(), row.begin(), row.end());
    ++p.rows;
  }
  if (p.rows == 0) throw DataError(name + ": no points (the file has no numeric lines)");
  return p;
}

Points read_points_csv(const std::filesystem::path& path) { return parse_points_csv(read_file(path), path.string()); }

Points parse_points_npy(const std::string& bytes, const std::string& name) {
  auto fail = [&](const std::string& what) { throw DataError(name + ": not a valid .npy file: " + what); };
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0) fail("bad magic");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail("truncated header");
    header_len = 0;
    for (int i = 3; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[8 + i]);
    header_start = 12;
  } else {
    fail(fmt::format("unsupported format version {}", major));
  }
  if (bytes.size() < header_start + header_len) fail("truncated header");
  const std::string header = bytes.substr(header_start, header_len);

  // The header is a Python dict literal: {'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }
  auto value_of = [&](const std::string& key) -> std::string {
    const std::string quoted[2] = {"'" + key + "'", "\"" + key + "\""};
    size_t at = std::string::npos;
    for (const auto& q : quoted)
      if ((at = header.find(q)) != std::string::npos) {
        at += q.size();
        break;
      }
    if (at == std::string::npos) fail("header has no '" + key + "'");
    at = header.find(':', at);
    if (at == std::string::npos) fail("malformed header");
    ++at;
    while (at < header.size() && std::isspace(static_cast<unsigned char>(header[at]))) ++at;
    if (at >= header.size()) fail("malformed header");
    size_t end;
    if (header[at] == '\'' || header[at] == '"') {
      end = header.find(header[at], at + 1);
      if (end == std::string::npos) fail("malformed header");
      return header.substr(at + 1, end - at - 1);
    }
    if (header[at] == '(') {
      end = header.find(')', at);
      if (end == std::string::npos) fail("malformed header");
      return header.substr(at, end - at + 1);
    }
    end = header.find_first_of(",}", at);
    return trim(header.substr(at, end - at));
  };
  const std::string descr = value_of("descr");
  const std::string fortran = value_of("fortran_order");
  const std::string shape_text = value_of("shape");

  size_t item = 0;
  bool swap = false;
  if (descr.size() == 3 && (descr[0] == '<' || descr[0] == '>' || descr[0] == '=') && descr[1] == 'f' &&
      (descr[2] == '4' || descr[2] == '8')) {
    item = descr[2] == '4' ? 4 : 8;
    swap = descr[0] == '>';  // this machine is little-endian
  } else {
    throw DataError(name + ": dtype '" + descr + "' is not supported (float32 or float64)");
  }
  if (fortran != "False" && fortran != "True") fail("fortran_order is '" + fortran + "'");
  const bool fortran_order = fortran == "True";

  std::vector<int64_t> shape;
  {
    std::string inner = shape_text.substr(1, shape_text.size() - 2);
    for (const auto& part : split_fields(inner, ',')) {
      const std::string t = trim(part);
      if (t.empty()) continue;
      char* end = nullptr;
      const long long v = std::strtoll(t.c_str(), &end, 10);
      if (end != t.c_str() + t.size() || v < 0) fail("bad shape " + shape_text);
      shape.push_back(v);
    }
  }
  if (shape.empty() || shape.size() > 2)
    throw DataError(fmt::format("{}: shape {} is not a table of points (N, D) or (N,)", name, shape_text));
  Points p;
  p.rows = shape[0];
  p.cols = shape.size() == 2 ? shape[1] : 1;
  if (p.rows == 0 || p.cols == 0) throw DataError(fmt::format("{}: shape {} holds no points", name, shape_text));
  const size_t data_start = header_start + header_len;
  const size_t count = static_cast<size_t>(p.rows) * static_cast<size_t>(p.cols);
  if (bytes.size() - data_start < count * item)
    throw DataError(fmt::format("{}: truncated: shape {} needs {} bytes of data, the file has {}", name, shape_text,
                                count * item, bytes.size() - data_start));
  p.values.resize(count);
  const char* data = bytes.data() + data_start;
  for (size_t q = 0; q < count; ++q) {
    char buf[8];
    std::memcpy(buf, data + q * item, item);
    if (swap) std::reverse(buf, buf + item);
    double v;
    if (item == 4) {
      float f;
      std::memcpy(&f, buf, 4);
      v = f;
    } else {
      std::memcpy(&v, buf, 8);
    }
    // Fortran order stores column by column.
    const size_t at = fortran_order ? (q % p.rows) * p.cols + q / p.rows : q;
    p.values[at] = v;
  }
  for (size_t q = 0; q < count; ++q)
    if (!std::isfinite(p.values[q]))
      throw DataError(fmt::format("{}: point {} has a non-finite value ({}) in feature {}", name, q / p.cols,
                                  p.values[q], q % p.cols));
  return p;
}

Points read_points_npy(const std::filesystem::path& path) { return parse_points_npy(read_file(path), path.string()); }

Points read_points(const std::filesystem::path& path) {
  const std::string ext = lower(path.extension().string());
  if (ext == ".csv") return read_points_csv(path);
  if (ext == ".npy") return read_points_npy(path);
  throw ConfigError(path.string() + ": unknown points format '" + ext + "' (expected .csv or .npy)");
}

std::string points_npy_bytes(const Points& points) {
  std::string header =
      fmt::format("{{'descr': '<f8', 'fortran_order': False, 'shape': ({}, {}), }}", points.rows, points.cols);
  // Pad with spaces so that magic + length + header + '\n' is a multiple of 64.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out += header;
  out.append(reinterpret_cast<const char*>(points.values.data()), points.values.size() * sizeof(double));
  return out;
}

}  // namespace defuse
