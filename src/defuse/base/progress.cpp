#include "defuse/base/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace defuse {

bool is_terminal(int fd) { return ::isatty(fd) == 1; }

std::string format_duration(double seconds) {
  char text[32];
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  if (seconds < 1) {
    std::snprintf(text, sizeof text, "%.0f ms", seconds * 1000);
  } else if (seconds < 60) {
    std::snprintf(text, sizeof text, "%.1f s", seconds);
  } else if (seconds < 3600) {
    std::snprintf(text, sizeof text, "%dm %02ds", static_cast<int>(seconds) / 60, static_cast<int>(seconds) % 60);
  } else {
    std::snprintf(text, sizeof text, "%dh %02dm", static_cast<int>(seconds) / 3600,
                  static_cast<int>(seconds) / 60 % 60);
  }
  return text;
}

Progress::Progress(std::ostream& out, std::string label, int64_t total, bool enabled)
    : out_(out),
      label_(std::move(label)),
      total_(total),
      enabled_(enabled),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_ - std::chrono::seconds(1)) {}

Progress::~Progress() {
  if (enabled_ && !finished_) out_ << "\n" << std::flush;
}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(int64_t done, const std::string& text) {
  last_done_ = done;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
  last_draw_ = now;
  draw(done, text);
}

void Progress::finish(const std::string& text) {
  if (!enabled_ || finished_) return;
  draw(total_ > 0 ? total_ : last_done_, text);
  out_ << "\n" << std::flush;
  finished_ = true;
}

void Progress::draw(int64_t done, const std::string& text) {
  constexpr int kWidth = 24;
  double fraction = total_ > 0 ? std::min(1.0, static_cast<double>(done) / static_cast<double>(total_)) : 0.0;
  int filled = static_cast<int>(fraction * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  double elapsed = elapsed_seconds();
  std::string eta = (fraction > 0 && fraction < 1) ? "ETA " + format_duration(elapsed * (1 - fraction) / fraction)
                                                   : format_duration(elapsed);
  out_ << "\r\033[2K" << label_ << " [" << bar << "] " << done << "/" << total_ << "  " << eta;
  if (!text.empty()) out_ << "  " << text;
  out_ << std::flush;
}

}  // namespace defuse
