// Progress bars and terminal helpers for the CLI. Stages never print: they report through
// callbacks, and the CLI forwards those to a Progress.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace defuse {

// True when file descriptor `fd` is a terminal.
bool is_terminal(int fd);

// A one-line progress bar on stderr: label, bar, done/total, rate, ETA and a free text
// (loss, accuracy). Redrawn at most ~10 times a second. Disabled (prints nothing) when
// `enabled` is false, which the CLI sets when stderr is not a terminal or with --quiet.
class Progress {
 public:
  Progress(std::ostream& out, std::string label, int64_t total, bool enabled);
  ~Progress();
  void update(int64_t done, const std::string& text = "");
  // Draws the final state and ends the line.
  void finish(const std::string& text = "");
  double elapsed_seconds() const;

 private:
  void draw(int64_t done, const std::string& text);

  std::ostream& out_;
  std::string label_;
  int64_t total_;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int64_t last_done_ = 0;
};

// "1m 23s", "4.2 s", "350 ms".
std::string format_duration(double seconds);

}  // namespace defuse
