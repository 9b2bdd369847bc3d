// Choice-valued options: one table of (value, name) pairs per enum, used to parse an option
// (with an error that lists the choices), to print a value, and to give CLI11 the names it
// checks against. One pattern for every option that takes one of a few words.
#pragma once

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "defuse/base/error.h"

namespace defuse {

template <typename E>
class ChoiceNames {
 public:
  ChoiceNames(std::initializer_list<std::pair<E, const char*>> entries) {
    for (const auto& [value, name] : entries) entries_.emplace_back(value, name);
  }

  // The value named `text`; ConfigError("<stage>: unknown --<option> 'x' (expected a, b or c)")
  // otherwise.
  E parse(const std::string& text, const std::string& stage, const std::string& option) const {
    for (const auto& [value, name] : entries_)
      if (name == text) return value;
    throw ConfigError(stage + ": unknown --" + option + " '" + text + "' (expected " + listing() + ")");
  }
  // Whether `text` names a value.
  bool contains(const std::string& text) const {
    for (const auto& entry : entries_)
      if (entry.second == text) return true;
    return false;
  }
  const std::string& name(E value) const {
    for (const auto& [v, name] : entries_)
      if (v == value) return name;
    static const std::string unknown = "?";
    return unknown;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& entry : entries_) out.push_back(entry.second);
    return out;
  }
  // "a, b or c"
  std::string listing() const {
    std::string out;
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (i > 0) out += i + 1 == entries_.size() ? " or " : ", ";
      out += entries_[i].second;
    }
    return out;
  }

 private:
  std::vector<std::pair<E, std::string>> entries_;
};

}  // namespace defuse
