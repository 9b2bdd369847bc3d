// Number and text formatting shared by the report's HTML sections and its SVG charts
// (internal to src/defuse/report). Fractions are shown as percentages; a negative or
// non-finite value means "unknown" and is shown as a dash, never written into an SVG.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace defuse::report {

// ---------------------------------------------------------------------------------------
// Formatting

inline bool known(double v) { return std::isfinite(v) && v >= 0; }

// A coordinate for SVG: one decimal, never NaN or infinite (those are drawn at 0).
inline std::string c1(double v) { return fmt::format("{:.1f}", std::isfinite(v) ? v : 0.0); }

inline std::string percent(double fraction, int decimals = 1) {
  if (!known(fraction)) return "\u2013";
  return fmt::format("{:.{}f}%", 100.0 * fraction, decimals);
}

inline std::string count(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

// λ as a short tick label: 0, 0.001, 1e-05, 0.3, 10.
inline std::string lambda_label(double lambda) { return lambda == 0 ? "0" : fmt::format("{:g}", lambda); }

inline bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// Whether a summary value reads as a number (with an optional unit): right-aligned.
inline bool looks_numeric(std::string_view v) {
  if (v.empty() || v.size() > 32) return false;
  size_t i = (v[0] == '-' || v[0] == '+') ? 1 : 0;
  return i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]));
}

inline std::string class_name(const std::vector<std::string>& names, int64_t index) {
  if (index >= 0 && index < static_cast<int64_t>(names.size())) return names[index];
  return "class " + std::to_string(index);
}

// Long names would run out of a legend: cut at `max` code points with an ellipsis.
inline std::string shorten(const std::string& text, size_t max) {
  size_t points = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80 && points++ == max) {
      return text.substr(0, i) + "\u2026";
    }
  }
  return text;
}

// Rough width in pixels of `text` at `font_px` (sans-serif averages ~0.58 em a glyph).
inline double text_px(const std::string& text, double font_px) {
  size_t points = 0;
  for (unsigned char c : text) points += (c & 0xC0) != 0x80;
  return 0.58 * font_px * static_cast<double>(points);
}

// The width and height in an image's PNG header (IHDR), if it has one.
inline std::optional<std::pair<int64_t, int64_t>> png_size(std::string_view png) {
  static constexpr std::string_view kSignature("\x89PNG\r\n\x1a\n", 8);
  if (png.size() < 24 || png.substr(0, 8) != kSignature || png.substr(12, 4) != "IHDR") return std::nullopt;
  auto be32 = [&](size_t at) {
    int64_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(png[at + i]);
    return v;
  };
  int64_t w = be32(16), h = be32(20);
  if (w <= 0 || h <= 0) return std::nullopt;
  return std::make_pair(w, h);
}

}  // namespace defuse::report
