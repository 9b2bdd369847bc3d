// Tests of the text checks (src/defuse/base/utf8.h) that annotations and the labelling
// server apply to annotator names and notes, and of the byte order mark's removal.
#include "defuse/base/utf8.h"

#include <gtest/gtest.h>

namespace defuse {
namespace {

TEST(Utf8, ValidatesAndCounts) {
  EXPECT_TRUE(is_valid_utf8("plain"));
  EXPECT_TRUE(is_valid_utf8("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xc3"));              // truncated
  EXPECT_FALSE(is_valid_utf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xe0\x80\xaf"));      // overlong
  EXPECT_FALSE(is_valid_utf8("\x80"));
  EXPECT_EQ(utf8_length("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), 6u);
}

TEST(Utf8, FindsControlCharacters) {
  EXPECT_FALSE(has_control_characters("plain h\xc3\xa9", false));
  EXPECT_TRUE(
      has_control_characters("a\x01"
                             "b",
                             false));
  EXPECT_TRUE(has_control_characters("del\x7f", true));
  EXPECT_TRUE(has_control_characters("two\nlines", false));
  EXPECT_FALSE(has_control_characters("two\nlines\tand a tab\r\n", true));
}

TEST(Utf8, StripsTheByteOrderMark) {
  EXPECT_EQ(strip_utf8_bom("\xEF\xBB\xBFtext"), "text");
  EXPECT_EQ(strip_utf8_bom("text"), "text");
  EXPECT_EQ(strip_utf8_bom("\xEF\xBB"), "\xEF\xBB");
  EXPECT_EQ(strip_utf8_bom(""), "");
}

}  // namespace
}  // namespace defuse
