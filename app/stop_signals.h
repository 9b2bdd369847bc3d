// SIGINT/SIGTERM as a request to stop (the labelling page's loop), for as long as a
// StopSignals lives: the catalogue is left between two transactions and a summary printed.
#pragma once

#include <csignal>

namespace defuse::cli {

inline volatile std::sig_atomic_t g_stop_requested = 0;
extern "C" inline void defuse_request_stop(int) { g_stop_requested = 1; }

// Installs the handlers, and restores the previous ones when destroyed.
class StopSignals {
 public:
  StopSignals() {
    g_stop_requested = 0;
    struct sigaction action {};
    action.sa_handler = defuse_request_stop;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  bool requested() const { return g_stop_requested != 0; }

 private:
  struct sigaction old_int_ {
  }, old_term_{};
};

}  // namespace defuse::cli
