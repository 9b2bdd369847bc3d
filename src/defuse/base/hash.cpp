#include "defuse/base/hash.h"

#include <xxhash.h>

#include <cstdio>
#include <fstream>
#include <vector>

#include "defuse/base/error.h"

namespace defuse {

namespace {
std::string to_hex(const XXH128_hash_t& h) {
  char text[33];
  std::snprintf(text, sizeof text, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return text;
}
}  // namespace

Hasher::Hasher() : state_(XXH3_createState()) { XXH3_128bits_reset(static_cast<XXH3_state_t*>(state_)); }
Hasher::~Hasher() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

Hasher& Hasher::update(const void* data, size_t size) {
  XXH3_128bits_update(static_cast<XXH3_state_t*>(state_), data, size);
  return *this;
}
Hasher& Hasher::update(std::string_view bytes) {
  // Length-prefix each piece so ("ab","c") and ("a","bc") hash differently.
  uint64_t n = bytes.size();
  update(&n, sizeof n);
  return update(bytes.data(), bytes.size());
}
std::string Hasher::hex() const { return to_hex(XXH3_128bits_digest(static_cast<XXH3_state_t*>(state_))); }

std::string hash_bytes(std::string_view bytes) { return to_hex(XXH3_128bits(bytes.data(), bytes.size())); }

std::string hash_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open " + path.string() + " to hash it");
  XXH3_state_t* state = XXH3_createState();
  XXH3_128bits_reset(state);
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    XXH3_128bits_update(state, buffer.data(), static_cast<size_t>(in.gcount()));
  }
  bool bad = in.bad();
  std::string hex = to_hex(XXH3_128bits_digest(state));
  XXH3_freeState(state);
  if (bad) throw IoError("cannot read " + path.string() + " to hash it");
  return hex;
}

}  // namespace defuse
