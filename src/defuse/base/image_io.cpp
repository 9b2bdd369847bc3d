#include "defuse/base/image_io.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>

#include "defuse/base/error.h"

// The stb implementations live in this file only. PPM is parsed by decode_ppm below (it is
// fuzzed), so stb_image decodes just PNG and JPEG; files are read by us, not through stdio.
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb_image.h>
#include <stb_image_resize.h>
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace defuse {
namespace {

// Largest side a PPM header may claim, and largest pixel count accepted from any format:
// far beyond classifier inputs, small enough that a lying header cannot exhaust memory.
constexpr uint64_t kMaxPpmSide = 1 << 16;
constexpr int64_t kMaxPixels = int64_t{1} << 26;

bool is_ppm_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

Image decode_with_stb(const uint8_t* bytes, size_t size, const std::string& what) {
  auto fail = [&](const std::string& problem) { throw DataError(what + ": " + problem); };
  if (size > static_cast<size_t>(INT_MAX)) fail("file too large to decode");
  int width = 0, height = 0, native_channels = 0;
  const int len = static_cast<int>(size);
  if (!stbi_info_from_memory(bytes, len, &width, &height, &native_channels)) {
    fail(std::string("corrupt image (") + stbi_failure_reason() + ")");
  }
  if (int64_t{width} * height > kMaxPixels) {
    fail("image of " + std::to_string(width) + "x" + std::to_string(height) + " is too large");
  }
  // Grey (+alpha) decodes to grey, RGB(A) to RGB: alpha carries no class information.
  const int channels = native_channels <= 2 ? 1 : 3;
  std::unique_ptr<uint8_t, void (*)(void*)> data(
      stbi_load_from_memory(bytes, len, &width, &height, &native_channels, channels), &stbi_image_free);
  if (!data) fail(std::string("corrupt image (") + stbi_failure_reason() + ")");
  Image image{width, height, channels, {}};
  image.pixels.assign(data.get(), data.get() + int64_t{width} * height * channels);
  return image;
}

}  // namespace

Image decode_ppm(const uint8_t* bytes, size_t size, const std::string& what) {
  auto fail = [&](const std::string& problem) { throw DataError(what + ": " + problem); };
  if (size < 2 || bytes[0] != 'P' || (bytes[1] != '5' && bytes[1] != '6')) {
    fail("not a binary PPM/PGM image (expected magic P5 or P6)");
  }
  const int64_t channels = bytes[1] == '6' ? 3 : 1;
  size_t pos = 2;
  // Header fields are separated by whitespace, with '#' comments running to the line end.
  auto read_field = [&](const std::string& name, uint64_t max) {
    bool separated = false;
    while (pos < size && (is_ppm_space(bytes[pos]) || bytes[pos] == '#')) {
      if (bytes[pos] == '#') {
        while (pos < size && bytes[pos] != '\n' && bytes[pos] != '\r') ++pos;
      } else {
        ++pos;
      }
      separated = true;
    }
    if (pos >= size) fail("truncated header before the " + name);
    if (!separated || bytes[pos] < '0' || bytes[pos] > '9') {
      fail("bad header: expected the " + name + " as a decimal number");
    }
    uint64_t value = 0;
    for (; pos < size && bytes[pos] >= '0' && bytes[pos] <= '9'; ++pos) {
      value = value * 10 + (bytes[pos] - '0');
      if (value > max) fail(name + " exceeds " + std::to_string(max));
    }
    if (value == 0) fail(name + " is zero");
    return value;
  };
  const uint64_t width = read_field("width", kMaxPpmSide);
  const uint64_t height = read_field("height", kMaxPpmSide);
  const uint64_t maxval = read_field("maxval", 65535);
  if (pos >= size || !is_ppm_space(bytes[pos])) {
    fail("bad header: expected one whitespace byte before the pixel data");
  }
  ++pos;
  if (width * height > static_cast<uint64_t>(kMaxPixels)) {
    fail("image of " + std::to_string(width) + "x" + std::to_string(height) + " is too large");
  }
  const uint64_t sample_bytes = maxval > 255 ? 2 : 1;
  const uint64_t samples = width * height * channels;
  const uint64_t needed = samples * sample_bytes;
  if (needed > size - pos) {
    fail("truncated pixel data: the header claims " + std::to_string(width) + "x" + std::to_string(height) + " (" +
         std::to_string(needed) + " bytes) but " + std::to_string(size - pos) + " bytes follow");
  }
  Image image{static_cast<int64_t>(width), static_cast<int64_t>(height), channels, {}};
  image.pixels.resize(samples);
  const uint8_t* raster = bytes + pos;
  for (uint64_t i = 0; i < samples; ++i) {
    // 16-bit samples are big-endian; samples above maxval are clamped rather than wrapped.
    const uint64_t v = sample_bytes == 2 ? (uint64_t{raster[2 * i]} << 8) | raster[2 * i + 1] : raster[i];
    image.pixels[i] = maxval == 255 ? static_cast<uint8_t>(v)
                                    : static_cast<uint8_t>((std::min(v, maxval) * 255 + maxval / 2) / maxval);
  }
  return image;
}

Image decode_image(const uint8_t* bytes, size_t size, const std::string& what) {
  static const uint8_t kPng[] = {0x89, 'P', 'N', 'G'};
  static const uint8_t kJpeg[] = {0xFF, 0xD8, 0xFF};
  if (size >= 1 && bytes[0] == 'P') return decode_ppm(bytes, size, what);
  if ((size >= sizeof kPng && std::memcmp(bytes, kPng, sizeof kPng) == 0) ||
      (size >= sizeof kJpeg && std::memcmp(bytes, kJpeg, sizeof kJpeg) == 0)) {
    return decode_with_stb(bytes, size, what);
  }
  throw DataError(what + ": not a PNG, JPEG or binary PPM/PGM image");
}

std::vector<uint8_t> read_file_bytes(const std::string& path, const std::string& stage) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw IoError(stage + ": " + path + ": cannot open: " + std::strerror(errno));
  std::vector<uint8_t> bytes;
  std::error_code error;
  const uintmax_t expected = std::filesystem::file_size(path, error);
  if (!error) bytes.reserve(expected);
  uint8_t chunk[1 << 16];
  size_t got;
  while ((got = std::fread(chunk, 1, sizeof chunk, file.get())) > 0) {
    bytes.insert(bytes.end(), chunk, chunk + got);
  }
  if (std::ferror(file.get())) {
    throw IoError(stage + ": " + path + ": read error: " + std::strerror(errno));
  }
  return bytes;
}

Image read_image(const std::string& path, const std::string& stage) {
  const std::vector<uint8_t> bytes = read_file_bytes(path, stage);
  return decode_image(bytes.data(), bytes.size(), stage + ": " + path);
}

void for_each_image_file(const std::vector<std::string>& paths, const std::string& stage,
                         const std::function<void(size_t, Image&&)>& consume) {
  const int64_t n = static_cast<int64_t>(paths.size());
  std::vector<std::exception_ptr> errors(paths.size());
  // Lowest failing index so far: later items are skipped, earlier ones still run, so the
  // error reported is the same whatever the threads' timing.
  std::atomic<int64_t> first_failure{n};
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t i = 0; i < n; ++i) {
    if (i > first_failure.load(std::memory_order_relaxed)) continue;
    try {
      consume(static_cast<size_t>(i), read_image(paths[i], stage));
    } catch (...) {
      errors[i] = std::current_exception();
      int64_t current = first_failure.load();
      while (i < current && !first_failure.compare_exchange_weak(current, i)) {
      }
    }
  }
  if (first_failure < n) std::rethrow_exception(errors[first_failure]);
}

Image crop_image(const Image& image, int64_t x, int64_t y, int64_t width, int64_t height) {
  if (x < 0 || y < 0 || width <= 0 || height <= 0 || x + width > image.width || y + height > image.height) {
    throw Error("image: crop " + std::to_string(width) + "x" + std::to_string(height) + " at (" + std::to_string(x) +
                "," + std::to_string(y) + ") is outside the " + std::to_string(image.width) + "x" +
                std::to_string(image.height) + " image");
  }
  Image out{width, height, image.channels, {}};
  out.pixels.resize(width * height * image.channels);
  const int64_t row_bytes = width * image.channels;
  for (int64_t r = 0; r < height; ++r) {
    const uint8_t* src = image.pixels.data() + ((y + r) * image.width + x) * image.channels;
    std::copy(src, src + row_bytes, out.pixels.data() + r * row_bytes);
  }
  return out;
}

Image resize_image(const Image& image, int64_t width, int64_t height) {
  if (width == image.width && height == image.height) return image;
  if (width <= 0 || height <= 0 || width > INT_MAX || height > INT_MAX) {
    throw Error("image: cannot resize to " + std::to_string(width) + "x" + std::to_string(height));
  }
  Image out{width, height, image.channels, {}};
  out.pixels.resize(width * height * image.channels);
  if (!stbir_resize_uint8(image.pixels.data(), static_cast<int>(image.width), static_cast<int>(image.height), 0,
                          out.pixels.data(), static_cast<int>(width), static_cast<int>(height), 0,
                          static_cast<int>(image.channels))) {
    throw Error("image: resizing failed");
  }
  return out;
}

Image convert_channels(const Image& image, int64_t channels) {
  if (image.channels == channels) return image;
  const int64_t pixels = image.width * image.height;
  Image out{image.width, image.height, channels, {}};
  out.pixels.resize(pixels * channels);
  if (image.channels == 1 && channels == 3) {
    for (int64_t i = 0; i < pixels; ++i) {
      std::fill_n(out.pixels.data() + 3 * i, 3, image.pixels[i]);
    }
  } else if (image.channels == 3 && channels == 1) {
    for (int64_t i = 0; i < pixels; ++i) {
      const uint8_t* p = image.pixels.data() + 3 * i;
      out.pixels[i] = static_cast<uint8_t>((299 * p[0] + 587 * p[1] + 114 * p[2] + 500) / 1000);
    }
  } else {
    throw Error("image: cannot convert " + std::to_string(image.channels) + " channels to " + std::to_string(channels));
  }
  return out;
}

void copy_to_chw(const Image& image, uint8_t* out) {
  const int64_t pixels = image.width * image.height;
  for (int64_t c = 0; c < image.channels; ++c) {
    for (int64_t i = 0; i < pixels; ++i) out[c * pixels + i] = image.pixels[i * image.channels + c];
  }
}

std::vector<uint8_t> encode_png(const Image& image) {
  std::vector<uint8_t> out;
  auto append = [](void* context, void* data, int size) {
    auto* buffer = static_cast<std::vector<uint8_t>*>(context);
    const auto* bytes = static_cast<const uint8_t*>(data);
    buffer->insert(buffer->end(), bytes, bytes + size);
  };
  if (image.width <= 0 || image.height <= 0 || image.width > INT_MAX || image.height > INT_MAX || image.channels < 1 ||
      image.channels > 4 ||
      !stbi_write_png_to_func(append, &out, static_cast<int>(image.width), static_cast<int>(image.height),
                              static_cast<int>(image.channels), image.pixels.data(),
                              static_cast<int>(image.width * image.channels))) {
    throw Error("image: PNG encoding of a " + std::to_string(image.width) + "x" + std::to_string(image.height) + "x" +
                std::to_string(image.channels) + " image failed");
  }
  return out;
}

void write_png(const std::string& path, const Image& image) {
  const std::vector<uint8_t> png = encode_png(image);
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!file || std::fwrite(png.data(), 1, png.size(), file.get()) != png.size() || std::fclose(file.release()) != 0) {
    throw IoError("image: " + path + ": cannot write: " + std::strerror(errno));
  }
}

}  // namespace defuse
