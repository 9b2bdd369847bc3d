// The .npy writer: NumPy's version 1.0 header byte for byte, and numpy.load reading it back
// where Debian's python3-numpy is installed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/base/npy.h"
#include "support/test_support.h"

namespace defuse {
namespace {

TEST(Npy, HeaderIsNumpysVersionOneLayout) {
  const float values[6] = {1, 2, 3, 4, 5, 6};
  const std::string b = npy_bytes("<f4", {2, 3}, values, sizeof(values));
  ASSERT_GE(b.size(), 10u);
  EXPECT_EQ(b.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t header = static_cast<unsigned char>(b[8]) | (static_cast<size_t>(static_cast<unsigned char>(b[9])) << 8);
  EXPECT_EQ((10 + header) % 64, 0u);  // the data starts aligned
  EXPECT_EQ(b.size(), 10 + header + sizeof(values));
  const std::string dict = b.substr(10, header);
  EXPECT_EQ(dict.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 0), 0u) << dict;
  EXPECT_EQ(dict.back(), '\n');
  float back[6];
  std::memcpy(back, b.data() + 10 + header, sizeof(back));
  EXPECT_EQ(back[5], 6.0f);
}

TEST(Npy, ShapesOfOneAndNoDimensionAndErrors) {
  const int64_t v[3] = {7, 8, 9};
  EXPECT_TRUE(test::contains(npy_bytes("<i8", {3}, v, sizeof(v)), "'shape': (3,), }"));
  EXPECT_TRUE(test::contains(npy_bytes("<i8", {}, v, 8), "'shape': (), }"));
  EXPECT_TRUE(test::contains(npy_bytes("|u1", {0, 4}, v, 0), "'shape': (0, 4), }"));
  EXPECT_THROW(npy_bytes("<i8", {2}, v, sizeof(v)), Error);  // 2 elements, 24 bytes
  EXPECT_THROW(npy_bytes("<x9", {3}, v, sizeof(v)), Error);
  EXPECT_THROW(npy_bytes("<i8", {-1}, v, 0), Error);
}

TEST(Npy, NumpyLoadsWhatWeWrite) {
  if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3-numpy is not installed: numpy.load not checked";
  test::TempDir dir;
  const float f[6] = {1.5f, -2, 3, 4, 5, 6};
  const uint8_t u[4] = {0, 1, 254, 255};
  const int8_t s[2] = {-1, 2};
  write_file_atomic(dir.path() / "f.npy", npy_bytes("<f4", {2, 3}, f, sizeof(f)));
  write_file_atomic(dir.path() / "u.npy", npy_bytes("|u1", {1, 1, 2, 2}, u, sizeof(u)));
  write_file_atomic(dir.path() / "s.npy", npy_bytes("|i1", {2}, s, sizeof(s)));
  const std::string script =
      "import numpy, sys\n"
      "d = sys.argv[1]\n"
      "f = numpy.load(d + '/f.npy'); u = numpy.load(d + '/u.npy'); s = numpy.load(d + '/s.npy')\n"
      "assert f.dtype == numpy.float32 and f.shape == (2, 3) and f[0, 0] == 1.5 and f[1, 2] == 6, f\n"
      "assert u.dtype == numpy.uint8 and u.shape == (1, 1, 2, 2) and u[0, 0, 1, 1] == 255, u\n"
      "assert s.dtype == numpy.int8 and list(s) == [-1, 2], s\n"
      "print('ok')\n";
  write_file_atomic(dir.path() / "check.py", script);
  const std::string cmd = "/usr/bin/python3 " + (dir.path() / "check.py").string() + " " + dir.path().string() + " > " +
                          (dir.path() / "out").string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << read_file(dir.path() / "out");
}

}  // namespace
}  // namespace defuse
