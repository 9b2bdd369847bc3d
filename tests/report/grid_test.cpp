#include "defuse/report/grid.h"

#include <gtest/gtest.h>

#include "defuse/base/error.h"

namespace defuse {
namespace {

Image grey(int64_t w, int64_t h, uint8_t v) { return Image{w, h, 1, std::vector<uint8_t>(w * h, v)}; }

int64_t count_colour(const Image& im, Rgb c) {
  int64_t n = 0;
  for (int64_t i = 0; i < im.width * im.height; ++i)
    n += im.pixels[3 * i] == c.r && im.pixels[3 * i + 1] == c.g && im.pixels[3 * i + 2] == c.b;
  return n;
}

TEST(Grid, TextWidthCountsGlyphsAndFoldsTheArrow) {
  EXPECT_EQ(text_width(""), 0);
  EXPECT_EQ(text_width("7"), 5);
  EXPECT_EQ(text_width("3->8"), 17);  // three glyphs: 3, arrow, 8
  EXPECT_EQ(text_width("3->8", 2), 34);
  EXPECT_EQ(text_height(3), 21);
}

TEST(Grid, DrawsGlyphInkInTheGivenColour) {
  Image im{20, 10, 3, std::vector<uint8_t>(20 * 10 * 3, 0)};
  draw_text(im, 1, 1, "1", kTextRed);
  EXPECT_EQ(count_colour(im, kTextRed), 10);  // the '1' glyph has 10 ink cells
  Image other{20, 10, 3, std::vector<uint8_t>(20 * 10 * 3, 0)};
  draw_text(other, 1, 1, "8", kTextRed);
  EXPECT_GT(count_colour(other, kTextRed), 10);
  // Clipped at the edges, never out of bounds.
  draw_text(im, 17, 8, "WWW", kTextGreen, 3);
  draw_text(im, -30, -30, "lower case and ~unknown~", kTextGreen);
}

TEST(Grid, LaysOutTilesWithCaptions) {
  std::vector<GridTile> tiles;
  for (int i = 0; i < 7; ++i)
    tiles.push_back({grey(8, 8, static_cast<uint8_t>(30 * i)), std::to_string(i), kTextWhite});
  tiles[3].colour = kTextRed;
  tiles[3].caption = "3->5";
  tiles[0].framed = true;
  tiles[0].colour = kTextGreen;
  GridOptions o;
  o.columns = 3;
  o.scale = 2;
  o.padding = 4;
  Image g = make_grid(tiles, o);
  EXPECT_EQ(g.channels, 3);
  const int64_t cell_w = 17, cell_h = 16 + 7 + 3;  // caption "3->5" is wider than a 16-px tile
  EXPECT_EQ(g.width, 4 + 3 * (cell_w + 4));
  EXPECT_EQ(g.height, 4 + 3 * (cell_h + 4));
  EXPECT_GT(count_colour(g, kTextRed), 0);
  EXPECT_GE(count_colour(g, kTextGreen), 4 * 17);
  // The tiles' pixels are there, scaled: tile 6 (value 180) fills 16x16 pixels.
  EXPECT_EQ(count_colour(g, Rgb{180, 180, 180}), 256);
  // PNG encoding works on the result.
  EXPECT_FALSE(encode_png(g).empty());
}

TEST(Grid, TitleWidensTheImage) {
  GridOptions o;
  o.title = "a long title that is wider than one tile";
  Image g = make_grid({{grey(4, 4, 200), "", kTextWhite}}, o);
  EXPECT_GE(g.width, text_width(o.title) + 2 * o.padding);
}

TEST(Grid, RejectsEmptyInput) {
  EXPECT_THROW(make_grid({}, GridOptions{}), Error);
  GridOptions bad;
  bad.columns = 0;
  EXPECT_THROW(make_grid({{grey(4, 4, 0), "", kTextWhite}}, bad), Error);
}

}  // namespace
}  // namespace defuse
