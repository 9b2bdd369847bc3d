// Error classes and exit codes. Exceptions inside the library, exit codes at the edge
// (app/main.cpp): each class maps to one distinct exit code so scripts can tell a bad
// dataset from a bad option from a bad model.
#pragma once

#include <stdexcept>
#include <string>

namespace defuse {

// Exit codes returned by the `defuse` executable, one per error class.
enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,      // a bug or an unclassified failure (including LibTorch errors)
  kExitUsage = 2,         // command-line parse error (CLI11)
  kExitConfig = 3,        // an option value is invalid or options contradict each other
  kExitIo = 4,            // a file could not be read or written
  kExitData = 5,          // a dataset file is malformed
  kExitModel = 6,         // a model does not fit the data, or a checkpoint is unusable
  kExitState = 7,         // the workspace lacks what the stage needs (run an earlier stage)
  kExitBusy = 8,          // another process is writing to the workspace (retry, or --wait)
  kExitCheckFailed = 9,   // `defuse check`: the model failed a scenario of the suite (not an error)
  kExitDistributed = 10,  // a rank of a distributed run died, hung past the timeout, or disagrees with rank 0
  kExitInterrupted = 130,
};

// Base of every error the library throws on purpose. The message is complete and
// single-line, prefixed by the stage that raised it ("identify: ...").
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
  virtual ExitCode exit_code() const { return kExitInternal; }
};

// Invalid option values or combinations.
class ConfigError : public Error {
 public:
  using Error::Error;
  ExitCode exit_code() const override { return kExitConfig; }
};

// A file or directory could not be opened, read, written or renamed.
class IoError : public Error {
 public:
  using Error::Error;
  ExitCode exit_code() const override { return kExitIo; }
};

// A dataset file exists but its content is wrong (bad magic, truncated, mismatched counts).
// The message names the file and what is wrong.
class DataError : public Error {
 public:
  using Error::Error;
  ExitCode exit_code() const override { return kExitData; }
};

// A model (zoo checkpoint or TorchScript) cannot be used with this data: wrong input shape,
// wrong number of classes, unreadable checkpoint.
class ModelError : public Error {
 public:
  using Error::Error;
  ExitCode exit_code() const override { return kExitModel; }
};

// The workspace lacks the output of an earlier stage, or it is stale or inconsistent.
class StateError : public Error {
 public:
  using Error::Error;
  ExitCode exit_code() const override { return kExitState; }
};

// Another process holds the workspace's writer lock (the message names it: pid, command,
// since when).
class BusyError : public Error {
 public:
  using Error::Error;
  ExitCode exit_code() const override { return kExitBusy; }
};

// Throws ConfigError(stage + ": " + message) unless `condition` holds. For validating
// option structs; never for programmer errors (use assert there).
inline void check_option(bool condition, const std::string& stage, const std::string& message) {
  if (!condition) throw ConfigError(stage + ": " + message);
}

}  // namespace defuse
