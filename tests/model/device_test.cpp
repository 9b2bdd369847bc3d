#include "defuse/model/device.h"

#include <gtest/gtest.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

namespace defuse {
namespace {

// LibTorch's default, subnormals kept, on the calling thread and the intra-op pool (another
// test in this process may have flushed them).
void keep_denormals() {
  at::globalContext().setFlushDenormal(false);
  at::parallel_for(0, at::get_num_threads(), 1, [](int64_t, int64_t) { at::globalContext().setFlushDenormal(false); });
}

struct KeepDenormalsAfter {
  ~KeepDenormalsAfter() { keep_denormals(); }
};

TEST(Device, FlushDenormalsTurnsSubnormalResultsIntoZeroOnEveryThread) {
#if !(defined(__x86_64__) || defined(__i386__))
  GTEST_SKIP() << "FTZ/DAZ is an x86 setting";
#endif
  KeepDenormalsAfter restore;
  at::set_num_threads(1);
  keep_denormals();
  // 1e-20² = 1e-40 is subnormal in float32 (the smallest normal is 1.18e-38).
  auto tiny = torch::full({1 << 16}, 1e-20f);
  ASSERT_GT((tiny * tiny).max().item<float>(), 0.0f) << "subnormals are kept by default";
  set_compute_threads(2);  // what every stage calls first (prepare_compute): flushes them
  EXPECT_EQ((tiny * tiny).max().item<float>(), 0.0f);
  EXPECT_TRUE(flush_denormals());
  // A large element-wise op runs on the intra-op pool: no thread may keep a subnormal.
  auto big = torch::full({1 << 22}, 1e-20f);
  EXPECT_EQ((big * big).count_nonzero().item<int64_t>(), 0);
  // Normal values are untouched.
  EXPECT_FLOAT_EQ((torch::full({4}, 1e-10f) * 1e-10f).max().item<float>(), 1e-20f);
}

}  // namespace
}  // namespace defuse
