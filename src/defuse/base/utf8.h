// Checks of user-supplied text (annotator names, notes): well-formed UTF-8, its length in
// characters, control characters. Used by the annotation store and the labelling server;
// and the byte order mark that text files from spreadsheets and Windows editors start with.
#pragma once

#include <cstddef>
#include <string_view>

namespace defuse {

// Whether `text` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view text);

// The length of `text` in code points (for valid UTF-8: every byte that is not a
// continuation byte starts one).
size_t utf8_length(std::string_view text);

// Whether `text` holds an ASCII control character or DEL; with `allow_tab_newline`, tab,
// line feed and carriage return are allowed.
bool has_control_characters(std::string_view text, bool allow_tab_newline);

// `text` without the UTF-8 byte order mark (EF BB BF) it may start with.
std::string_view strip_utf8_bom(std::string_view text);

}  // namespace defuse
