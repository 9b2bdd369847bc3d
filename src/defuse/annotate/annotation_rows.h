// The rows of the annotations table as the store writes them, shared by the store
// (annotation_store.cpp) and the import of annotation files (annotation_io.cpp). Internal
// to the annotate module.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "defuse/annotate/annotation_store.h"

namespace defuse {

class Database;

namespace annotation_rows {

// Now as an annotation's created_at: "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC).
std::string now_iso_ms();

// Whether `s` is one or more ASCII digits.
bool all_digits(std::string_view s);

// "YYYY-MM-DDTHH:MM:SS[.f+]Z" (or with a space for 'T', or "+00:00" for 'Z') → the canonical
// "YYYY-MM-DDTHH:MM:SS.mmmZ", so that text order is time order. nullopt if malformed.
std::optional<std::string> normalise_timestamp(std::string_view t);

// Throws ConfigError("annotate: " + message).
[[noreturn]] void invalid(const std::string& message);

// Whether an annotation identical to `a` (run, scenario, annotator, label, rejection, note,
// automatic and created_at) is stored.
bool is_stored(Database& db, const Annotation& a);

// Stores `a` as it is, without validating it (the callers have), created_at "" = now;
// returns it with its id.
Annotation insert_annotation(Database& db, Annotation a);

}  // namespace annotation_rows
}  // namespace defuse
