#include "defuse/report/grid.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <map>

#include "defuse/base/error.h"

namespace defuse {

namespace {

using Glyph = std::array<const char*, 7>;

// A classic 5x7 character-LCD font, one string of 5 cells per row ('#' = ink).
const std::map<char, Glyph>& font() {
  static const std::map<char, Glyph> glyphs = {
      {'0', {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."}},
      {'1', {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."}},
      {'2', {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"}},
      {'3', {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."}},
      {'4', {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."}},
      {'5', {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."}},
      {'6', {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."}},
      {'7', {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."}},
      {'8', {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."}},
      {'9', {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."}},
      {'A', {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},
      {'B', {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."}},
      {'C', {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."}},
      {'D', {"###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."}},
      {'E', {"#####", "#....", "#....", "####.", "#....", "#....", "#####"}},
      {'F', {"#####", "#....", "#....", "####.", "#....", "#....", "#...."}},
      {'G', {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"}},
      {'H', {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},
      {'I', {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}},
      {'J', {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."}},
      {'K', {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"}},
      {'L', {"#....", "#....", "#....", "#....", "#....", "#....", "#####"}},
      {'M', {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"}},
      {'N', {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"}},
      {'O', {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},
      {'P', {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."}},
      {'Q', {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"}},
      {'R', {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"}},
      {'S', {".####", "#....", "#....", ".###.", "....#", "....#", "####."}},
      {'T', {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}},
      {'U', {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},
      {'V', {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."}},
      {'W', {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."}},
      {'X', {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"}},
      {'Y', {"#...#", "#...#", "#...#", ".#.#.", "..#..", "..#..", "..#.."}},
      {'Z', {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"}},
      {' ', {".....", ".....", ".....", ".....", ".....", ".....", "....."}},
      {'.', {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."}},
      {',', {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."}},
      {':', {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."}},
      {';', {".....", ".##..", ".##..", ".....", ".##..", "..#..", ".#..."}},
      {'-', {".....", ".....", ".....", "#####", ".....", ".....", "....."}},
      {'+', {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."}},
      {'_', {".....", ".....", ".....", ".....", ".....", ".....", "#####"}},
      {'/', {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."}},
      {'%', {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"}},
      {'(', {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."}},
      {')', {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."}},
      {'#', {".#.#.", ".#.#.", "#####", ".#.#.", "#####", ".#.#.", ".#.#."}},
      {'=', {".....", ".....", "#####", ".....", "#####", ".....", "....."}},
      {'<', {"...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."}},
      {'>', {".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."}},
      {'?', {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."}},
      {'!', {"..#..", "..#..", "..#..", "..#..", "..#..", ".....", "..#.."}},
      {'\'', {"..#..", "..#..", ".#...", ".....", ".....", ".....", "....."}},
      {'|', {"..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}},
      {'*', {".....", "#.#.#", ".###.", "#####", ".###.", "#.#.#", "....."}},
  };
  return glyphs;
}

constexpr Glyph kArrow = {".....", "..#..", "...#.", "#####", "...#.", "..#..", "....."};
constexpr Glyph kBox = {".....", "#####", "#...#", "#...#", "#...#", "#####", "....."};

// The glyphs of `text`, with "->" folded into one arrow.
std::vector<const Glyph*> glyphs_of(const std::string& text) {
  std::vector<const Glyph*> out;
  const auto& f = font();
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '-' && i + 1 < text.size() && text[i + 1] == '>') {
      out.push_back(&kArrow);
      ++i;
      continue;
    }
    auto it = f.find(static_cast<char>(std::toupper(static_cast<unsigned char>(text[i]))));
    out.push_back(it == f.end() ? &kBox : &it->second);
  }
  return out;
}

void put(Image& rgb, int64_t x, int64_t y, Rgb c) {
  if (x < 0 || y < 0 || x >= rgb.width || y >= rgb.height) return;
  uint8_t* p = rgb.pixels.data() + (y * rgb.width + x) * 3;
  p[0] = c.r;
  p[1] = c.g;
  p[2] = c.b;
}

}  // namespace

int text_width(const std::string& text, int scale) {
  const auto n = static_cast<int>(glyphs_of(text).size());
  return n == 0 ? 0 : (6 * n - 1) * scale;
}

void draw_text(Image& rgb, int64_t x, int64_t y, const std::string& text, Rgb colour, int scale) {
  if (rgb.channels != 3) throw Error("grid: draw_text needs an RGB image");
  int64_t pen = x;
  for (const Glyph* g : glyphs_of(text)) {
    for (int row = 0; row < 7; ++row)
      for (int col = 0; col < 5; ++col)
        if ((*g)[row][col] == '#')
          for (int dy = 0; dy < scale; ++dy)
            for (int dx = 0; dx < scale; ++dx) put(rgb, pen + col * scale + dx, y + row * scale + dy, colour);
    pen += 6 * scale;
  }
}

Image make_grid(const std::vector<GridTile>& tiles, const GridOptions& o) {
  if (tiles.empty()) throw Error("grid: no tiles to draw");
  if (o.columns < 1 || o.columns > 4096 || o.scale < 1 || o.scale > 64 || o.text_scale < 1 || o.text_scale > 64 ||
      o.padding < 0 || o.padding > 1024)
    throw Error("grid: options out of range");
  int64_t tile_w = 0, tile_h = 0, caption_w = 0;
  bool captions = false;
  for (const auto& t : tiles) {
    if (t.image.channels != 1 && t.image.channels != 3) throw Error("grid: tiles must be grey or RGB");
    tile_w = std::max(tile_w, t.image.width * o.scale);
    tile_h = std::max(tile_h, t.image.height * o.scale);
    caption_w = std::max<int64_t>(caption_w, text_width(t.caption, o.text_scale));
    captions = captions || !t.caption.empty();
  }
  const int64_t pad = o.padding;
  const int64_t caption_h = captions ? text_height(o.text_scale) + 3 : 0;
  const int64_t cell_w = std::max(tile_w, caption_w), cell_h = tile_h + caption_h;
  const int64_t columns = std::min<int64_t>(o.columns, static_cast<int64_t>(tiles.size()));
  const int64_t rows = (static_cast<int64_t>(tiles.size()) + columns - 1) / columns;
  const int64_t title_h = o.title.empty() ? 0 : text_height(o.text_scale) + pad;
  Image out;
  out.channels = 3;
  out.width = std::max<int64_t>(pad + columns * (cell_w + pad), 2 * pad + text_width(o.title, o.text_scale));
  out.height = pad + title_h + rows * (cell_h + pad);
  out.pixels.resize(static_cast<size_t>(out.width * out.height * 3));
  for (int64_t i = 0; i < out.width * out.height; ++i) {
    out.pixels[3 * i] = o.background.r;
    out.pixels[3 * i + 1] = o.background.g;
    out.pixels[3 * i + 2] = o.background.b;
  }
  if (!o.title.empty()) draw_text(out, pad, pad, o.title, kTextWhite, o.text_scale);

  for (size_t i = 0; i < tiles.size(); ++i) {
    const GridTile& t = tiles[i];
    const int64_t cx = pad + static_cast<int64_t>(i) % columns * (cell_w + pad);
    const int64_t cy = pad + title_h + static_cast<int64_t>(i) / columns * (cell_h + pad);
    const int64_t w = t.image.width * o.scale, h = t.image.height * o.scale;
    const int64_t x0 = cx + (cell_w - w) / 2, y0 = cy + (tile_h - h) / 2;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const uint8_t* src = t.image.pixels.data() + ((y / o.scale) * t.image.width + x / o.scale) * t.image.channels;
        put(out, x0 + x, y0 + y, t.image.channels == 1 ? Rgb{src[0], src[0], src[0]} : Rgb{src[0], src[1], src[2]});
      }
    if (t.framed) {
      for (int64_t x = -1; x <= w; ++x) {
        put(out, x0 + x, y0 - 1, t.colour);
        put(out, x0 + x, y0 + h, t.colour);
      }
      for (int64_t y = -1; y <= h; ++y) {
        put(out, x0 - 1, y0 + y, t.colour);
        put(out, x0 + w, y0 + y, t.colour);
      }
    }
    if (!t.caption.empty())
      draw_text(out, cx + (cell_w - text_width(t.caption, o.text_scale)) / 2, cy + tile_h + 2, t.caption, t.colour,
                o.text_scale);
  }
  return out;
}

}  // namespace defuse
