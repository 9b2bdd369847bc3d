// Writing an export directory as a whole (DirectoryWrite): all or nothing, and never over a
// directory that is not an earlier export.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "support/test_support.h"

namespace defuse {
namespace {

namespace fs = std::filesystem;

TEST(DirectoryWrite, CommitPutsTheWholeDirectoryInPlace) {
  test::TempDir tmp;
  const fs::path dir = tmp.path() / "out";
  {
    DirectoryWrite w(dir, "marker.json", "export");
    w.write("a/b.txt", "hello");
    w.write("marker.json", "{}");
    EXPECT_FALSE(fs::exists(dir));  // nothing visible before commit
    w.commit();
  }
  EXPECT_EQ(read_file(dir / "a" / "b.txt"), "hello");
  // Nothing but the directory is left beside it.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(tmp.path())) entries += e.path() == dir ? 0 : 1;
  EXPECT_EQ(entries, 0);
}

TEST(DirectoryWrite, WithoutCommitNothingChanges) {
  test::TempDir tmp;
  const fs::path dir = tmp.path() / "out";
  {
    DirectoryWrite w(dir, "marker.json", "export");
    w.write("marker.json", "first");
    w.commit();
  }
  {
    DirectoryWrite w(dir, "marker.json", "export");
    w.write("marker.json", "second");
    w.write("extra.txt", "x");
  }  // an exception or a kill before commit
  EXPECT_EQ(read_file(dir / "marker.json"), "first");
  EXPECT_FALSE(fs::exists(dir / "extra.txt"));
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()), 1);
}

TEST(DirectoryWrite, ReplacesAnEarlierExportWhole) {
  test::TempDir tmp;
  const fs::path dir = tmp.path() / "out";
  {
    DirectoryWrite w(dir, "marker.json", "export");
    w.write("marker.json", "1");
    w.write("old.txt", "old");
    w.commit();
  }
  {
    DirectoryWrite w(dir, "marker.json", "export");
    w.write("marker.json", "2");
    w.commit();
  }
  EXPECT_EQ(read_file(dir / "marker.json"), "2");
  EXPECT_FALSE(fs::exists(dir / "old.txt"));  // not a merge: the old export is gone
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()), 1);
}

TEST(DirectoryWrite, RefusesToWriteOverSomethingElse) {
  test::TempDir tmp;
  const fs::path dir = tmp.path() / "mine";
  fs::create_directories(dir);
  write_file_atomic(dir / "thesis.tex", "precious");
  try {
    DirectoryWrite w(dir, "marker.json", "export-suite");
    ADD_FAILURE() << "accepted a directory that is not an export";
  } catch (const IoError& e) {
    EXPECT_TRUE(test::contains(e.what(), "export-suite: ")) << e.what();
    EXPECT_TRUE(test::contains(e.what(), "holds no marker.json")) << e.what();
  }
  EXPECT_EQ(read_file(dir / "thesis.tex"), "precious");
  write_file_atomic(tmp.path() / "file", "x");
  EXPECT_THROW(DirectoryWrite(tmp.path() / "file", "marker.json", "export"), IoError);
  EXPECT_THROW(DirectoryWrite(tmp.path() / "no" / "such" / "out", "marker.json", "export"), IoError);
  // An empty directory is fine.
  fs::create_directories(tmp.path() / "empty");
  DirectoryWrite w(tmp.path() / "empty", "marker.json", "export");
  w.write("marker.json", "{}");
  w.commit();
  EXPECT_TRUE(fs::exists(tmp.path() / "empty" / "marker.json"));
}

TEST(DirectoryWrite, RemovesTheTemporaryOfAKilledWriter) {
  test::TempDir tmp;
  const fs::path dir = tmp.path() / "out";
  // A child starts a write and dies without committing or unwinding.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    DirectoryWrite w(dir, "marker.json", "export");
    w.write("half.png", "x");
    _exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  const fs::path left = tmp.path() / ("out.tmp-defuse-" + std::to_string(child));
  ASSERT_TRUE(fs::exists(left));
  DirectoryWrite w(dir, "marker.json", "export");
  EXPECT_FALSE(fs::exists(left));
}

}  // namespace
}  // namespace defuse
