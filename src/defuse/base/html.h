// Text encodings for HTML pages (the labelling page, the report). Torch-free.
#pragma once

#include <string>
#include <string_view>

namespace defuse {

// `text` with & < > " ' replaced by entities: safe in element content and in quoted
// attribute values (HTML and XML/SVG alike).
std::string html_escape(std::string_view text);

// Standard base64 (RFC 4648 §4, with '=' padding, no line breaks), for data: URIs.
std::string base64_encode(std::string_view bytes);

}  // namespace defuse
