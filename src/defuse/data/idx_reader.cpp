// IDX files (MNIST, Fashion-MNIST), raw or gzip-compressed.
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <tuple>

#include "defuse/base/error.h"
#include "defuse/base/image_io.h"
#include "defuse/data/dataset.h"

namespace defuse {
namespace {

namespace fs = std::filesystem;

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string text;
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? "x" : "") + std::to_string(dims[i]);
  return text;
}

// The first existing file among the names MNIST-style directories use for `stem` (e.g.
// "train-images", "idx3"): the official names, gzip or not, and the dotted variants.
std::string find_idx_file(const std::string& dir, const std::string& name, const std::string& stem,
                          const std::string& idx) {
  const std::string official = stem + "-" + idx + "-ubyte", dotted = stem + "." + idx + "-ubyte";
  for (const std::string& file : {official, official + ".gz", dotted, dotted + ".gz"}) {
    const fs::path path = fs::path(dir) / file;
    if (fs::is_regular_file(path)) return path.string();
  }
  throw IoError("data: " + name + ": " + official + "[.gz] (or " + dotted + "[.gz]) not found in " + dir);
}

// Reads one split (prefix "train" or "t10k"); returns its images' height and width.
std::pair<int64_t, int64_t> read_idx_split(const Dataset& dataset, const std::string& dir, const std::string& prefix,
                                           DataSplit& split) {
  const std::string images_path = find_idx_file(dir, dataset.name, prefix + "-images", "idx3");
  const std::string labels_path = find_idx_file(dir, dataset.name, prefix + "-labels", "idx1");
  const std::vector<uint8_t> image_bytes = read_data_file(images_path);
  IdxArray images = parse_idx(image_bytes.data(), image_bytes.size(), images_path);
  if (images.dims.size() != 3) {
    throw DataError("data: " + images_path + ": expected images [N, H, W], found an array of " +
                    dims_text(images.dims));
  }
  const std::vector<uint8_t> label_bytes = read_data_file(labels_path);
  const IdxArray labels = parse_idx(label_bytes.data(), label_bytes.size(), labels_path);
  if (labels.dims.size() != 1) {
    throw DataError("data: " + labels_path + ": expected labels [N], found an array of " + dims_text(labels.dims));
  }
  if (labels.dims[0] != images.dims[0]) {
    throw DataError("data: " + labels_path + " holds " + std::to_string(labels.dims[0]) + " labels but " + images_path +
                    " holds " + std::to_string(images.dims[0]) + " images");
  }
  split.labels.resize(labels.data.size());
  for (size_t i = 0; i < labels.data.size(); ++i) {
    if (labels.data[i] >= dataset.num_classes()) {
      throw DataError("data: " + labels_path + ": label " + std::to_string(labels.data[i]) + " of example " +
                      std::to_string(i) + " is outside 0.." + std::to_string(dataset.num_classes() - 1));
    }
    split.labels[i] = labels.data[i];
  }
  split.images = std::move(images.data);  // [N, H, W] is [N, 1, H, W]
  return {images.dims[1], images.dims[2]};
}

}  // namespace

std::vector<uint8_t> gunzip(const uint8_t* bytes, size_t size, const std::string& what) {
  auto fail = [&](const std::string& problem) { throw DataError("data: " + what + ": " + problem); };
  z_stream stream{};
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) fail("cannot initialise zlib");
  const std::unique_ptr<z_stream, int (*)(z_stream*)> end_stream(&stream, &inflateEnd);
  // The trailer's ISIZE (output size mod 2^32) sizes the buffer in one go for ordinary files;
  // capping it at 64x the input keeps a lying trailer from reserving memory the data lacks
  // (beyond that the buffer doubles as output actually arrives).
  const uint64_t isize = size >= 4 ? (uint64_t{bytes[size - 1]} << 24) | (uint64_t{bytes[size - 2]} << 16) |
                                         (uint64_t{bytes[size - 3]} << 8) | bytes[size - 4]
                                   : 0;
  std::vector<uint8_t> out(std::clamp<uint64_t>(isize, 1 << 16, uint64_t{size} * 64 + (1 << 16)));
  constexpr size_t kMaxChunk = std::numeric_limits<uInt>::max();  // zlib counts in uInt
  size_t in_pos = 0, out_pos = 0;
  for (;;) {
    if (out_pos == out.size()) out.resize(out.size() * 2);
    const size_t in_chunk = std::min(size - in_pos, kMaxChunk);
    const size_t out_chunk = std::min(out.size() - out_pos, kMaxChunk);
    stream.next_in = const_cast<Bytef*>(bytes + in_pos);
    stream.avail_in = static_cast<uInt>(in_chunk);
    stream.next_out = out.data() + out_pos;
    stream.avail_out = static_cast<uInt>(out_chunk);
    const int rc = inflate(&stream, Z_NO_FLUSH);
    in_pos += in_chunk - stream.avail_in;
    out_pos += out_chunk - stream.avail_out;
    if (rc == Z_STREAM_END) {
      if (in_pos == size) break;
      inflateReset(&stream);  // another gzip member follows (as `cat a.gz b.gz` makes)
    } else if (rc == Z_BUF_ERROR && in_pos == size) {
      fail("truncated gzip stream (it ends before its end marker)");
    } else if (rc != Z_OK) {
      fail(std::string("corrupt gzip stream (zlib: ") + (stream.msg ? stream.msg : "error") + ")");
    }
  }
  out.resize(out_pos);
  return out;
}

std::vector<uint8_t> read_data_file(const std::string& path) {
  std::vector<uint8_t> bytes = read_file_bytes(path, "data");
  if (bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) {
    return gunzip(bytes.data(), bytes.size(), path);
  }
  return bytes;
}

IdxArray parse_idx(const uint8_t* bytes, size_t size, const std::string& what) {
  auto fail = [&](const std::string& problem) { throw DataError("data: " + what + ": " + problem); };
  if (size < 4) fail("too short for an IDX header (" + std::to_string(size) + " bytes)");
  const uint32_t magic = read_be32(bytes);
  if (bytes[0] != 0 || bytes[1] != 0 || bytes[3] == 0) {
    char hex[11];
    std::snprintf(hex, sizeof hex, "0x%08x", magic);
    fail(std::string("bad magic ") + hex + ": not an IDX file");
  }
  if (bytes[2] != 0x08) {
    fail("IDX element type " + std::to_string(bytes[2]) + " is not supported (only unsigned bytes, type 8)");
  }
  const size_t rank = bytes[3];
  const size_t header = 4 + 4 * rank;
  if (size < header) {
    fail("truncated header: " + std::to_string(rank) + " dimensions need " + std::to_string(header) +
         " bytes, the file has " + std::to_string(size));
  }
  IdxArray array;
  uint64_t claimed = 1;  // saturates instead of overflowing
  for (size_t i = 0; i < rank; ++i) {
    const uint32_t dim = read_be32(bytes + 4 + 4 * i);
    array.dims.push_back(dim);
    claimed = dim != 0 && claimed > std::numeric_limits<uint64_t>::max() / dim ? std::numeric_limits<uint64_t>::max()
                                                                               : claimed * dim;
  }
  const uint64_t present = size - header;
  if (claimed > present) {
    fail("truncated payload: the header claims " + dims_text(array.dims) + " (" + std::to_string(claimed) +
         " bytes) but " + std::to_string(present) + " bytes follow");
  }
  if (claimed < present) {
    fail("the header claims " + dims_text(array.dims) + " (" + std::to_string(claimed) + " bytes) but " +
         std::to_string(present) + " bytes follow");
  }
  array.data.assign(bytes + header, bytes + size);
  return array;
}

Dataset read_idx_dataset(const std::string& dir, const std::string& name, const std::vector<std::string>& class_names) {
  if (!fs::is_directory(dir)) {
    throw IoError("data: " + name + ": directory " + dir + " does not exist");
  }
  Dataset dataset;
  dataset.name = name;
  dataset.source = "IDX files in " + dir;
  dataset.class_names = class_names;
  dataset.channels = 1;
  std::tie(dataset.height, dataset.width) = read_idx_split(dataset, dir, "train", dataset.train);
  const auto [test_height, test_width] = read_idx_split(dataset, dir, "t10k", dataset.test);
  if (test_height != dataset.height || test_width != dataset.width) {
    throw DataError("data: " + name + " in " + dir + ": test images are " + std::to_string(test_width) + "x" +
                    std::to_string(test_height) + " but training images are " + std::to_string(dataset.width) + "x" +
                    std::to_string(dataset.height));
  }
  dataset.validate();
  return dataset;
}

}  // namespace defuse
