#include "defuse/base/image_io.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "defuse/base/error.h"
#include "support/test_support.h"

namespace defuse {
namespace {

std::vector<uint8_t> bytes_of(const std::string& text) { return {text.begin(), text.end()}; }

Image gradient(int64_t width, int64_t height, int64_t channels) {
  Image image{width, height, channels, {}};
  for (int64_t i = 0; i < width * height * channels; ++i) image.pixels.push_back((i * 7) % 256);
  return image;
}

// The DataError message of decoding `bytes` as a PPM, or "" if it decodes.
std::string ppm_error(const std::string& bytes) {
  try {
    decode_ppm(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "x.ppm");
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

TEST(ImageIo, PngRoundTripsGreyAndRgb) {
  for (int64_t channels : {1, 3}) {
    const Image image = gradient(5, 4, channels);
    const std::vector<uint8_t> png = encode_png(image);
    const Image back = decode_image(png.data(), png.size(), "mem.png");
    EXPECT_EQ(back.width, 5);
    EXPECT_EQ(back.height, 4);
    EXPECT_EQ(back.channels, channels);
    EXPECT_EQ(back.pixels, image.pixels);
  }
}

TEST(ImageIo, WritePngWritesAFileReadImageReads) {
  test::TempDir tmp;
  const Image image = gradient(3, 2, 3);
  const std::string path = (tmp.path() / "a.png").string();
  write_png(path, image);
  EXPECT_EQ(read_image(path, "test").pixels, image.pixels);
  EXPECT_THROW(write_png((tmp.path() / "missing" / "a.png").string(), image), IoError);
}

TEST(ImageIo, DecodesPpmP6AndPgmP5) {
  const std::string p6 = std::string("P6\n2 1\n255\n") + "\x01\x02\x03\x04\x05\x06";
  const Image rgb = decode_ppm(reinterpret_cast<const uint8_t*>(p6.data()), p6.size(), "a");
  EXPECT_EQ(rgb.channels, 3);
  EXPECT_EQ(rgb.width, 2);
  EXPECT_EQ(rgb.height, 1);
  EXPECT_EQ(rgb.pixels, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6}));
  const std::string p5 = std::string("P5 1 2 255 ") + "\x07\x08";
  const Image grey = decode_image(reinterpret_cast<const uint8_t*>(p5.data()), p5.size(), "b");
  EXPECT_EQ(grey.channels, 1);
  EXPECT_EQ(grey.pixels, (std::vector<uint8_t>{7, 8}));
}

TEST(ImageIo, PpmAcceptsCommentsSmallAndSixteenBitMaxval) {
  const std::string commented = std::string("P5\n# made by hand\n2 # width\n1\n15\n") + "\x0f\x05";
  const Image a = decode_ppm(reinterpret_cast<const uint8_t*>(commented.data()), commented.size(), "a");
  EXPECT_EQ(a.pixels, (std::vector<uint8_t>{255, 85}));  // scaled from maxval 15
  const std::string wide = std::string("P5 2 1 65535\n") + std::string("\xff\xff\x80\x00", 4);
  const Image b = decode_ppm(reinterpret_cast<const uint8_t*>(wide.data()), wide.size(), "b");
  EXPECT_EQ(b.pixels, (std::vector<uint8_t>{255, 128}));
}

TEST(ImageIo, PpmRejectsMalformedHeadersWithAMessage) {
  EXPECT_TRUE(test::contains(ppm_error("P3\n1 1\n255\n1 2 3"), "expected magic P5 or P6"));
  EXPECT_TRUE(test::contains(ppm_error("P6"), "truncated header"));
  EXPECT_TRUE(test::contains(ppm_error("P6\n0 1\n255\n"), "width is zero"));
  EXPECT_TRUE(test::contains(ppm_error("P6\nx 1\n255\n"), "expected the width"));
  EXPECT_TRUE(test::contains(ppm_error("P61 1\n255\n"), "expected the width"));
  EXPECT_TRUE(test::contains(ppm_error("P6\n1 1\n70000\n"), "maxval exceeds"));
  EXPECT_TRUE(test::contains(ppm_error("P6\n99999999999 1\n255\n"), "width exceeds"));
  EXPECT_TRUE(test::contains(ppm_error("P6\n1 1\n255"), "expected one whitespace"));
  EXPECT_TRUE(test::contains(ppm_error("P6\n1 1\n255x\x01\x02\x03"), "expected one whitespace"));
  EXPECT_EQ(ppm_error("P6\n1 1\n255\n\x01\x02\x03"), "");
}

TEST(ImageIo, PpmTruncatedRasterFailsBeforeAllocating) {
  const std::string message = ppm_error("P6\n65536 65536\n255\n\x01\x02");
  EXPECT_TRUE(test::contains(message, "x.ppm: "));
  EXPECT_TRUE(test::contains(message, "too large"));
  const std::string truncated = ppm_error("P6\n4 4\n255\n\x01\x02\x03");
  EXPECT_TRUE(test::contains(truncated, "truncated pixel data"));
  EXPECT_TRUE(test::contains(truncated, "48 bytes"));
}

TEST(ImageIo, DecodesJpeg) {
  test::TempDir tmp;
  Image flat{8, 8, 3, std::vector<uint8_t>(8 * 8 * 3, 0)};
  for (size_t i = 0; i < flat.pixels.size(); i += 3) flat.pixels[i] = 200;  // red
  test::write_image_file(tmp.path() / "a.jpg", flat);
  const Image back = read_image((tmp.path() / "a.jpg").string(), "test");
  ASSERT_EQ(back.channels, 3);
  ASSERT_EQ(back.width, 8);
  EXPECT_NEAR(back.pixels[0], 200, 8);
  EXPECT_NEAR(back.pixels[1], 0, 8);
}

TEST(ImageIo, RejectsCorruptAndUnknownFiles) {
  std::vector<uint8_t> png = encode_png(gradient(16, 16, 3));
  png.resize(png.size() / 2);
  EXPECT_THROW(decode_image(png.data(), png.size(), "half.png"), DataError);
  const std::vector<uint8_t> text = bytes_of("hello, world");
  EXPECT_EQ(test::error_message<DataError>([&] { decode_image(text.data(), text.size(), "data: notes.png"); }),
            "data: notes.png: not a PNG, JPEG or binary PPM/PGM image");
  EXPECT_THROW(decode_image(nullptr, 0, "empty"), DataError);
}

TEST(ImageIo, ReadImageOfMissingFileIsIoError) {
  test::TempDir tmp;
  const std::string path = (tmp.path() / "none.png").string();
  const std::string message = test::error_message<IoError>([&] { read_image(path, "data"); });
  EXPECT_EQ(message.rfind("data: " + path + ": cannot open", 0), 0u) << message;
}

TEST(ImageIo, CropsExactlyAndRejectsOutsideBoxes) {
  const Image image = gradient(4, 3, 1);  // pixel (x, y) = ((y * 4 + x) * 7) % 256
  const Image crop = crop_image(image, 1, 1, 2, 2);
  EXPECT_EQ(crop.pixels, (std::vector<uint8_t>{35, 42, 63, 70}));
  EXPECT_THROW(crop_image(image, 3, 0, 2, 1), Error);
  EXPECT_THROW(crop_image(image, -1, 0, 1, 1), Error);
  EXPECT_THROW(crop_image(image, 0, 0, 0, 1), Error);
}

TEST(ImageIo, ResizeKeepsFlatImagesFlat) {
  Image flat{7, 5, 3, std::vector<uint8_t>(7 * 5 * 3, 90)};
  for (auto [w, h] : {std::pair<int64_t, int64_t>{3, 2}, {20, 30}, {7, 5}}) {
    const Image out = resize_image(flat, w, h);
    EXPECT_EQ(out.width, w);
    EXPECT_EQ(out.height, h);
    EXPECT_EQ(out.pixels, std::vector<uint8_t>(w * h * 3, 90));
  }
}

TEST(ImageIo, ConvertsChannelsAndCopiesToChw) {
  const Image grey{2, 1, 1, {10, 200}};
  const Image rgb = convert_channels(grey, 3);
  EXPECT_EQ(rgb.pixels, (std::vector<uint8_t>{10, 10, 10, 200, 200, 200}));
  EXPECT_EQ(convert_channels(rgb, 1).pixels, grey.pixels);
  const Image colour{2, 1, 3, {1, 2, 3, 4, 5, 6}};
  std::vector<uint8_t> chw(6);
  copy_to_chw(colour, chw.data());
  EXPECT_EQ(chw, (std::vector<uint8_t>{1, 4, 2, 5, 3, 6}));
}

TEST(ImageIo, ForEachImageFileRethrowsTheLowestFailingIndex) {
  test::TempDir tmp;
  std::vector<std::string> paths;
  for (int i = 0; i < 40; ++i) {
    const auto path = tmp.path() / (std::to_string(i) + ".png");
    if (i != 7 && i != 30) test::write_file(path, encode_png(gradient(2, 2, 1)));
    paths.push_back(path.string());
  }
  std::vector<int> seen(paths.size(), 0);
  for (int repeat = 0; repeat < 20; ++repeat) {  // the same error whatever the timing
    const std::string message = test::error_message<IoError>(
        [&] { for_each_image_file(paths, "data", [&](size_t i, Image&&) { seen[i] = 1; }); });
    EXPECT_TRUE(test::contains(message, "/7.png")) << message;
  }
  paths.erase(paths.begin() + 30);
  paths.erase(paths.begin() + 7);
  std::fill(seen.begin(), seen.end(), 0);
  for_each_image_file(paths, "data", [&](size_t i, Image&& image) { seen[i] = image.width; });
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 2), 38);
}

}  // namespace
}  // namespace defuse
