// Tests of the CSV and .npy point readers (src/defuse/distill/points_io.h).
#include "defuse/distill/points_io.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "defuse/base/error.h"
#include "support/test_support.h"

namespace defuse {
namespace {

// A .npy file's bytes with any header and payload (for malformed cases).
std::string npy(const std::string& header, const std::string& payload, int major = 1) {
  std::string h = header;
  const size_t prefix = major == 1 ? 10 : 12;
  h.append((64 - (prefix + h.size() + 1) % 64) % 64, ' ');
  h.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back(static_cast<char>(major));
  out.push_back('\0');
  const size_t len = h.size();
  out.push_back(static_cast<char>(len & 0xff));
  out.push_back(static_cast<char>((len >> 8) & 0xff));
  if (major != 1) out.append(2, '\0');
  return out + h + payload;
}

template <typename T>
std::string raw(const std::vector<T>& values, bool big_endian = false) {
  std::string out(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
  if (big_endian)
    for (size_t i = 0; i < values.size(); ++i)
      std::reverse(out.begin() + i * sizeof(T), out.begin() + (i + 1) * sizeof(T));
  return out;
}

TEST(PointsCsv, ReadsNumbersWithOrWithoutHeader) {
  auto p = parse_points_csv("1,2,3\n4.5, -6e-1 ,7\r\n\n", "a.csv");
  EXPECT_EQ(p.rows, 2);
  EXPECT_EQ(p.cols, 3);
  EXPECT_EQ(p.values, (std::vector<double>{1, 2, 3, 4.5, -0.6, 7}));
  p = parse_points_csv("x,y\n1,2\n3,4", "b.csv");
  EXPECT_EQ(p.rows, 2);
  EXPECT_EQ(p.values, (std::vector<double>{1, 2, 3, 4}));
}

TEST(PointsCsv, MalformedFilesAreDataErrorsNamingTheLine) {
  auto msg = test::error_message<DataError>([] { parse_points_csv("1,2\n3,oops\n", "bad.csv"); });
  EXPECT_TRUE(test::contains(msg, "bad.csv: line 2, column 2")) << msg;
  msg = test::error_message<DataError>([] { parse_points_csv("1,2\n3\n", "ragged.csv"); });
  EXPECT_TRUE(test::contains(msg, "line 2 has 1 values, expected 2")) << msg;
  msg = test::error_message<DataError>([] { parse_points_csv("x,y\n1,2\n3,4,5\n", "h.csv"); });
  EXPECT_TRUE(test::contains(msg, "line 3")) << msg;
  msg = test::error_message<DataError>([] { parse_points_csv("1,2\nnan,4\n", "nan.csv"); });
  EXPECT_TRUE(test::contains(msg, "line 2, column 1: nan is not a finite number")) << msg;
  msg = test::error_message<DataError>([] { parse_points_csv("1,inf\n", "inf.csv"); });
  EXPECT_TRUE(test::contains(msg, "not a finite number")) << msg;
  msg = test::error_message<DataError>([] { parse_points_csv("a,b\n", "empty.csv"); });
  EXPECT_TRUE(test::contains(msg, "no points")) << msg;
}

TEST(PointsNpy, ReadsFloat64AndFloat32InEitherOrder) {
  Points p{{1, 2, 3, 4, 5, 6}, 3, 2};
  auto back = parse_points_npy(points_npy_bytes(p), "x.npy");
  EXPECT_EQ(back.rows, 3);
  EXPECT_EQ(back.cols, 2);
  EXPECT_EQ(back.values, p.values);
  EXPECT_EQ(points_npy_bytes(p).size() % 64, 48u);  // header padded to 64 bytes, then 48 of data

  auto f32 = parse_points_npy(
      npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", raw(std::vector<float>{1.5f, 2, 3, 4})),
      "f.npy");
  EXPECT_EQ(f32.values, (std::vector<double>{1.5, 2, 3, 4}));
  // Fortran order: stored column by column.
  auto fortran = parse_points_npy(
      npy("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", raw(std::vector<double>{1, 4, 2, 5, 3, 6})),
      "fo.npy");
  EXPECT_EQ(fortran.values, (std::vector<double>{1, 2, 3, 4, 5, 6}));
  // Big-endian, version 2 header, 1-D shape.
  auto be = parse_points_npy(
      npy("{'descr': '>f8', 'fortran_order': False, 'shape': (3,), }", raw(std::vector<double>{7, 8, 9}, true), 2),
      "be.npy");
  EXPECT_EQ(be.rows, 3);
  EXPECT_EQ(be.cols, 1);
  EXPECT_EQ(be.values, (std::vector<double>{7, 8, 9}));
}

TEST(PointsNpy, MalformedFilesAreDataErrors) {
  auto expect = [](const std::string& bytes, const std::string& part) {
    auto msg = test::error_message<DataError>([&] { parse_points_npy(bytes, "m.npy"); });
    EXPECT_TRUE(test::contains(msg, "m.npy")) << msg;
    EXPECT_TRUE(test::contains(msg, part)) << msg;
  };
  expect("not a numpy file", "bad magic");
  expect(npy("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 2), }", std::string(32, '\0')), "'<i8'");
  expect(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2, 2), }", std::string(64, '\0')), "shape");
  expect(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4, 2), }", std::string(40, '\0')), "truncated");
  expect(npy("{'descr': '<f8', 'shape': (1, 1), }", std::string(8, '\0')), "fortran_order");
  expect(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 3), }", ""), "no points");
  expect(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }",
             raw(std::vector<double>{1, std::numeric_limits<double>::quiet_NaN()})),
         "point 0 has a non-finite value (nan) in feature 1");
  expect(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }", "", 7), "version 7");
}

TEST(Points, ReadsByExtensionAndReportsMissingFiles) {
  test::TempDir tmp;
  test::write_file(tmp.path() / "p.csv", std::string_view("1,2\n3,4\n"));
  Points p{{1, 2, 3, 4}, 2, 2};
  test::write_file(tmp.path() / "p.npy", std::string_view(points_npy_bytes(p)));
  EXPECT_EQ(read_points(tmp.path() / "p.csv").values, p.values);
  test::write_file(tmp.path() / "upper.NPY", std::string_view(points_npy_bytes(p)));
  EXPECT_EQ(read_points(tmp.path() / "upper.NPY").values, p.values);  // extensions in any case
  EXPECT_EQ(read_points(tmp.path() / "p.npy").values, p.values);
  EXPECT_THROW(read_points(tmp.path() / "missing.npy"), IoError);
  EXPECT_THROW(read_points(tmp.path() / "p.txt"), ConfigError);
}

}  // namespace
}  // namespace defuse
