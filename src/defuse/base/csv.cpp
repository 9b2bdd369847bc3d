#include "defuse/base/csv.h"

#include <utility>

#include "defuse/base/error.h"
#include "defuse/base/utf8.h"

namespace defuse {

std::vector<CsvRecord> read_csv(std::string_view text, const std::string& name) {
  text = strip_utf8_bom(text);
  std::vector<CsvRecord> records;
  CsvRecord record;
  std::string field;
  int64_t line = 1;
  record.line = 1;
  bool quoted = false, field_started = false, after_quote = false;
  auto end_field = [&] {
    record.fields.push_back(std::move(field));
    field.clear();
    field_started = false;
    after_quote = false;
  };
  auto end_record = [&] {
    end_field();
    // A line with nothing on it is not a record.
    if (!(record.fields.size() == 1 && record.fields[0].empty())) records.push_back(std::move(record));
    record = CsvRecord{};
    record.line = line;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
          after_quote = true;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == ',') {
      end_field();
    } else if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      ++line;
      end_record();
    } else if (c == '"' && !field_started) {
      quoted = true;
      field_started = true;
    } else {
      if (after_quote)
        throw DataError(name + ": line " + std::to_string(line) +
                        ": text after a closing quote (write a quote inside a quoted field as \"\")");
      field += c;
      field_started = true;
    }
  }
  if (quoted) throw DataError(name + ": line " + std::to_string(record.line) + ": unterminated quote");
  if (field_started || !record.fields.empty()) end_record();
  return records;
}

std::string csv_field(const std::string& value) {
  bool quote = value.find_first_of(",\"\r\n") != std::string::npos ||
               (!value.empty() && (value.front() == ' ' || value.back() == ' '));
  if (!quote) return value;
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string csv_record(const std::vector<std::string>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) out += (i ? "," : "") + csv_field(fields[i]);
  return out + "\r\n";
}

bool LineReader::next(std::string_view& line) {
  if (start_ >= text_.size()) return false;
  size_t end = text_.find('\n', start_);
  if (end == std::string_view::npos) end = text_.size();
  line = text_.substr(start_, end - start_);
  start_ = end + 1;
  ++number_;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return true;
}

std::vector<std::string_view> split_fields(std::string_view line, char separator) {
  std::vector<std::string_view> fields;
  for (size_t start = 0;;) {
    const size_t end = line.find(separator, start);
    fields.push_back(line.substr(start, end - start));
    if (end == std::string_view::npos) return fields;
    start = end + 1;
  }
}

}  // namespace defuse
