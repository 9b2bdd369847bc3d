// Delimited text tables.
//
// RFC 4180 CSV, as spreadsheets read and write it (the annotation import and export): fields
// separated by commas, records by CRLF, LF or CR; a field in double quotes may hold commas,
// line breaks and quotes (doubled).
//
// Formats without quoting, whose fields never hold their separator (GTSRB's `;`-separated
// annotation files, the point tables of `defuse cluster`), are read line by line instead
// (LineReader, split_fields): there a quote is an ordinary character and only '\n' ends a
// line, so the RFC 4180 reader would read some files differently from what they mean.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace defuse {

struct CsvRecord {
  int64_t line = 0;  // where the record starts, 1-based
  std::vector<std::string> fields;
};

// The records of `text`, which may start with a UTF-8 byte order mark (spreadsheets write
// one). A line with nothing on it is not a record. Throws DataError("<name>: line N: ...")
// for text after a closing quote and for an unterminated quote.
std::vector<CsvRecord> read_csv(std::string_view text, const std::string& name);

// `value` as one CSV field: quoted (quotes doubled) when it holds a comma, a quote or a line
// break, or starts or ends with a space (which a spreadsheet could trim), as is otherwise.
std::string csv_field(const std::string& value);

// One record: csv_field of each of `fields`, separated by commas, ended by CRLF.
std::string csv_record(const std::vector<std::string>& fields);

// The lines of a text without quoting, one by one: split at '\n', each without a trailing
// '\r', numbered from 1 (a last line without '\n' counts; nothing follows a final '\n').
class LineReader {
 public:
  explicit LineReader(std::string_view text) : text_(text) {}
  // The next line into `line`; false when there is none.
  bool next(std::string_view& line);
  // The number of the line `next` gave last (0 before the first).
  int64_t number() const { return number_; }

 private:
  std::string_view text_;
  size_t start_ = 0;
  int64_t number_ = 0;
};

// `line` split at every `separator` (no quoting): n separators give n + 1 fields.
std::vector<std::string_view> split_fields(std::string_view line, char separator);

}  // namespace defuse
