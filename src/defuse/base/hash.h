// Content hashes for the workspace catalogue (stage inputs and artifacts): XXH3-128 from
// libxxhash, printed as 32 hex digits. Not cryptographic: it detects change, not tampering.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace defuse {

std::string hash_bytes(std::string_view bytes);
// Streams the file; throws IoError if it cannot be read.
std::string hash_file(const std::filesystem::path& path);

// Incremental hashing of several values (a stage's options and its inputs' hashes).
class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  Hasher& update(std::string_view bytes);
  Hasher& update(const void* data, size_t size);
  std::string hex() const;

 private:
  void* state_;
};

}  // namespace defuse
