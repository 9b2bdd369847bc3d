// Tests of the delimited-text readers and writers (src/defuse/base/csv.h).
#include "defuse/base/csv.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "defuse/base/error.h"
#include "support/test_support.h"

namespace defuse {
namespace {

using Fields = std::vector<std::string>;

TEST(Csv, ReadsQuotedFieldsAndEveryLineBreak) {
  auto records = read_csv("a,b,c\r\n1,\"x, y\",\"say \"\"hi\"\"\"\n2,\"two\nlines\",\rlast", "t.csv");
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0].fields, (Fields{"a", "b", "c"}));
  EXPECT_EQ(records[1].fields, (Fields{"1", "x, y", "say \"hi\""}));
  EXPECT_EQ(records[2].fields, (Fields{"2", "two\nlines", ""}));
  EXPECT_EQ(records[3].fields, (Fields{"last"}));
  // Each record says the line it starts on; a quoted line break counts as a line.
  EXPECT_EQ(records[0].line, 1);
  EXPECT_EQ(records[1].line, 2);
  EXPECT_EQ(records[2].line, 3);
  EXPECT_EQ(records[3].line, 5);
}

TEST(Csv, SkipsTheByteOrderMarkAndEmptyLines) {
  auto records = read_csv("\xEF\xBB\xBFh1,h2\n\n\r\n1,2\n", "t.csv");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].fields, (Fields{"h1", "h2"}));
  EXPECT_EQ(records[1].fields, (Fields{"1", "2"}));
  EXPECT_EQ(records[1].line, 4);
  // A line of separators only is a record; one empty field, quoted or not, is none.
  records = read_csv("\"\"\n,\n", "t.csv");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].fields, (Fields{"", ""}));
  EXPECT_EQ(records[0].line, 2);
  EXPECT_TRUE(read_csv("", "t.csv").empty());
}

TEST(Csv, MalformedQuotesAreDataErrorsNamingTheLine) {
  auto msg = test::error_message<DataError>([] { read_csv("a,b\n\"x\"y,z\n", "annotate: f.csv"); });
  EXPECT_EQ(msg, "annotate: f.csv: line 2: text after a closing quote (write a quote inside a quoted field as \"\")");
  msg = test::error_message<DataError>([] { read_csv("a,b\n1,\"open\n2,3\n", "f.csv"); });
  EXPECT_EQ(msg, "f.csv: line 2: unterminated quote");
}

TEST(Csv, WritesFieldsThatReadBack) {
  // (value, as written): quoted only when a reader would otherwise take it apart or trim it.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"plain", "plain"},
      {"", ""},
      {"a,b", "\"a,b\""},
      {"say \"hi\"", "\"say \"\"hi\"\"\""},
      {"two\nlines", "\"two\nlines\""},
      {"cr\r", "\"cr\r\""},
      {" padded", "\" padded\""},
      {"padded ", "\"padded \""},
  };
  for (const auto& [value, written] : cases) EXPECT_EQ(csv_field(value), written) << value;
  const Fields fields = {"1", "", "a,b", "say \"hi\"", "two\r\nlines", " x "};
  const std::string record = csv_record(fields);
  EXPECT_EQ(record, "1,,\"a,b\",\"say \"\"hi\"\"\",\"two\r\nlines\",\" x \"\r\n");
  auto back = read_csv(record + csv_record({"next"}), "t.csv");
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].fields, fields);
  EXPECT_EQ(back[1].fields, (Fields{"next"}));
  EXPECT_EQ(back[1].line, 3);
}

TEST(Csv, LineReaderNumbersLinesAndDropsCarriageReturns) {
  LineReader lines("a;b\r\n\nc\"d\re\nlast");
  std::string_view line;
  std::vector<std::string_view> seen;
  std::vector<int64_t> numbers;
  while (lines.next(line)) {
    seen.push_back(line);
    numbers.push_back(lines.number());
  }
  EXPECT_EQ(seen, (std::vector<std::string_view>{"a;b", "", "c\"d\re", "last"}));
  EXPECT_EQ(numbers, (std::vector<int64_t>{1, 2, 3, 4}));
  LineReader ended("x\n");
  ASSERT_TRUE(ended.next(line));
  EXPECT_EQ(line, "x");
  EXPECT_FALSE(ended.next(line));  // nothing after the final '\n'
  LineReader empty("");
  EXPECT_FALSE(empty.next(line));
  EXPECT_EQ(empty.number(), 0);
}

TEST(Csv, SplitFieldsKeepsEveryField) {
  EXPECT_EQ(split_fields("a;b;;c", ';'), (std::vector<std::string_view>{"a", "b", "", "c"}));
  EXPECT_EQ(split_fields("", ','), (std::vector<std::string_view>{""}));
  EXPECT_EQ(split_fields("\"x,y\",z", ','), (std::vector<std::string_view>{"\"x", "y\"", "z"}));  // no quoting
  EXPECT_EQ(split_fields("1,2,", ','), (std::vector<std::string_view>{"1", "2", ""}));
}

}  // namespace
}  // namespace defuse
