// Image grids with text captions for figures (failure grids, interpolation strips,
// scenario samples), drawn with a built-in 5x7 bitmap font so that no font file or
// rasteriser is needed. Torch-free; images come in as defuse::Image and leave as RGB.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "defuse/base/image_io.h"

namespace defuse {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

inline constexpr Rgb kTextWhite{235, 235, 235};
inline constexpr Rgb kTextRed{255, 64, 64};
inline constexpr Rgb kTextGreen{96, 220, 96};
inline constexpr Rgb kTextGrey{150, 150, 150};

struct GridTile {
  Image image;          // grey or RGB, any size (tiles of one grid should share a size)
  std::string caption;  // drawn under the tile; "" for none
  Rgb colour = kTextWhite;
  bool framed = false;  // draw a 1-pixel frame in `colour` around the tile (e.g. originals)
};

struct GridOptions {
  int columns = 10;    // tiles per row
  int scale = 2;       // integer nearest-neighbour upscaling of every tile
  int text_scale = 1;  // integer upscaling of the 5x7 font
  int padding = 4;     // pixels between tiles and around the grid
  Rgb background{24, 24, 24};
  std::string title;  // a line of text above the grid; "" for none
};

// Width and height in pixels of `text` in the 5x7 font at `scale` (one pixel of spacing
// between glyphs). "->" counts as one arrow glyph.
int text_width(const std::string& text, int scale = 1);
inline int text_height(int scale = 1) { return 7 * scale; }

// Draws `text` with its top-left corner at (x, y) into an RGB image, clipping at its edges.
// Letters are drawn upper-case; digits, space and . , : ; - + _ / % ( ) # = < > ? ! ' | * are
// supported, "->" becomes an arrow; other characters are drawn as a small box.
void draw_text(Image& rgb, int64_t x, int64_t y, const std::string& text, Rgb colour, int scale = 1);

// Lays the tiles out row by row with their captions under them. Throws Error when there
// are no tiles or the options are out of range (columns, scale, text_scale 1..64).
Image make_grid(const std::vector<GridTile>& tiles, const GridOptions& options);

}  // namespace defuse
