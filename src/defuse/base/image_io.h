// Image files: decoding (PNG and JPEG through stb_image, binary PPM/PGM through our own
// bounds-checked parser), crop, resize, channel conversion and PNG encoding. Torch-free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace defuse {

// An 8-bit image with interleaved channels.
struct Image {
  int64_t width = 0, height = 0;
  int64_t channels = 0;         // 1 (grey) or 3 (RGB)
  std::vector<uint8_t> pixels;  // [H, W, C], row-major, 0..255
};

// Decodes a PNG, JPEG or binary PPM/PGM image held in memory. Alpha is dropped and grey
// stays grey, so the result has 1 or 3 channels. Throws DataError("<what>: <problem>").
Image decode_image(const uint8_t* bytes, size_t size, const std::string& what);

// Decodes a binary PPM (P6, RGB) or PGM (P5, grey) image, maxval 1..65535 (scaled to 0..255).
// Checks the header's claimed size against the bytes present before allocating; bytes after
// the raster are ignored. Throws DataError("<what>: <problem>").
Image decode_ppm(const uint8_t* bytes, size_t size, const std::string& what);

// Reads a whole file. Throws IoError("<stage>: <path>: ...") if it cannot be opened or read.
std::vector<uint8_t> read_file_bytes(const std::string& path, const std::string& stage);

// Reads and decodes an image file. Throws IoError("<stage>: <path>: ...") when the file
// cannot be read and DataError("<stage>: <path>: ...") when its content is not a valid image.
Image read_image(const std::string& path, const std::string& stage);

// Reads `paths` in parallel (OpenMP) and calls `consume(index, image)` for each, from any
// thread: `consume` must only touch state owned by that index. If any read or `consume`
// throws, the exception of the lowest failing index is rethrown once all threads stop.
void for_each_image_file(const std::vector<std::string>& paths, const std::string& stage,
                         const std::function<void(size_t, Image&&)>& consume);

// The `width` x `height` region whose top-left corner is (x, y). Throws Error if the region
// is empty or not inside the image (callers clamp untrusted boxes first).
Image crop_image(const Image& image, int64_t x, int64_t y, int64_t width, int64_t height);

// Resamples to `width` x `height` (stb_image_resize: Mitchell filter when shrinking,
// Catmull-Rom when enlarging). Returns a copy when the size is unchanged.
Image resize_image(const Image& image, int64_t width, int64_t height);

// Converts between grey and RGB: grey is replicated, RGB becomes ITU-R BT.601 luma.
Image convert_channels(const Image& image, int64_t channels);

// Copies the pixels to `out` in planar [C, H, W] order (the Dataset layout); `out` must
// hold width * height * channels bytes.
void copy_to_chw(const Image& image, uint8_t* out);

// Encodes as PNG (grey or RGB). Throws Error if stb_image_write fails.
std::vector<uint8_t> encode_png(const Image& image);

// Writes `image` as a PNG file. Throws IoError("image: <path>: ...") on failure.
void write_png(const std::string& path, const Image& image);

}  // namespace defuse
