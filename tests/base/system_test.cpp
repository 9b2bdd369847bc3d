#include "defuse/base/system.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

namespace defuse {
namespace {

// Sets an environment variable for one scope, then puts back what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(KeepFreedMemory, LeavesAUsersMallocTuningAlone) {
  {
    ScopedEnv tunables("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=4096");
    EXPECT_FALSE(keep_freed_memory());
  }
  ScopedEnv trim("MALLOC_TRIM_THRESHOLD_", "4096");
  EXPECT_FALSE(keep_freed_memory());
}

// A block the size of a training step's activations comes from the heap, not from a fresh
// mmap, and stays with the process after it is freed, ready for the next step.
TEST(KeepFreedMemory, LargeBlocksAreReusedNotReturned) {
  if (std::getenv("GLIBC_TUNABLES") || std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_"))
    GTEST_SKIP() << "malloc is tuned from the environment";
  ASSERT_TRUE(keep_freed_memory());
  constexpr size_t kBlock = size_t{24} << 20;
  const size_t mapped_before = mallinfo2().hblkhd;
  auto* block = static_cast<char*>(std::malloc(kBlock));
  ASSERT_NE(block, nullptr);
  std::memset(block, 1, kBlock);
  EXPECT_LT(mallinfo2().hblkhd, mapped_before + kBlock) << "the block was mmapped";
  std::free(block);
  EXPECT_GE(mallinfo2().fordblks, kBlock) << "the freed block went back to the kernel";
  // A later block of the same size reuses those pages.
  const size_t heap_before = mallinfo2().arena;
  block = static_cast<char*>(std::malloc(kBlock));
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(mallinfo2().arena, heap_before);
  std::free(block);
}

}  // namespace
}  // namespace defuse
