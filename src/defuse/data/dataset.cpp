// Dataset::validate, the `--data` spec parser and the fixed class-name lists.
#include "defuse/data/dataset.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "defuse/base/error.h"

namespace defuse {
namespace {

constexpr const char* kFashionMnistDefaultDir = "/usr/share/datasets/fashion-mnist";
// Largest `image_size` accepted: generous for classifier inputs, and it bounds the memory a
// resizing reader allocates per image.
constexpr int64_t kMaxImageSize = 1024;

void validate_split(const Dataset& dataset, const DataSplit& split, const std::string& which) {
  const std::string where = "data: " + dataset.name + " (" + dataset.source + "): ";
  if (split.size() == 0) throw DataError(where + "the " + which + " split is empty");
  if (static_cast<int64_t>(split.images.size()) != split.size() * dataset.image_size()) {
    throw DataError(where + "the " + which + " split has " + std::to_string(split.size()) + " labels but " +
                    std::to_string(split.images.size()) + " pixel bytes (expected " +
                    std::to_string(split.size() * dataset.image_size()) + ")");
  }
  for (int64_t i = 0; i < split.size(); ++i) {
    if (split.labels[i] < 0 || split.labels[i] >= dataset.num_classes()) {
      throw DataError(where + "label " + std::to_string(split.labels[i]) + " of " + which + " example " +
                      std::to_string(i) + " is outside 0.." + std::to_string(dataset.num_classes() - 1));
    }
  }
}

// A fraction as a person would write it: 0.2, not 0.200000.
std::string fraction_text(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

}  // namespace

void Dataset::validate() const {
  const std::string where = "data: " + name + " (" + source + "): ";
  if (channels != 1 && channels != 3) {
    throw DataError(where + "images have " + std::to_string(channels) + " channels (expected 1 or 3)");
  }
  if (height <= 0 || width <= 0) {
    throw DataError(where + "bad image size " + std::to_string(width) + "x" + std::to_string(height));
  }
  if (num_classes() < 2) {
    throw DataError(where + "needs at least 2 classes, has " + std::to_string(num_classes()));
  }
  validate_split(*this, train, "train");
  validate_split(*this, test, "test");
}

void DataOptions::validate() const {
  check_option(image_size >= 1 && image_size <= kMaxImageSize, "data",
               "image size must be in 1.." + std::to_string(kMaxImageSize) + ", got " + std::to_string(image_size));
  check_option(holdout > 0 && holdout < 1, "data",
               "holdout must be a fraction in (0, 1), got " + fraction_text(holdout));
}

DataSpec parse_data_spec(const std::string& spec, const DataOptions& defaults) {
  DataSpec parsed;
  parsed.options = defaults;
  // KIND[:DIR] before the first comma, KEY=VALUE options after it.
  const size_t comma = spec.find(',');
  const std::string head = spec.substr(0, comma);
  const size_t colon = head.find(':');
  parsed.kind = head.substr(0, colon);
  parsed.dir = colon == std::string::npos ? "" : head.substr(colon + 1);
  if (colon != std::string::npos && parsed.dir.empty()) {
    throw ConfigError("data: '" + spec + "' names no directory after ':'");
  }
  if (parsed.kind != "fashion-mnist" && parsed.kind != "mnist" && parsed.kind != "svhn" && parsed.kind != "gtsrb" &&
      parsed.kind != "folder") {
    throw ConfigError("data: unknown dataset '" + spec +
                      "' (expected fashion-mnist[:DIR], mnist:DIR, svhn:DIR, gtsrb:DIR or "
                      "folder:DIR)");
  }
  if (parsed.dir.empty() && parsed.kind != "fashion-mnist") {
    throw ConfigError("data: '" + spec + "' needs a directory: " + parsed.kind + ":DIR");
  }
  if (comma == std::string::npos) {
    parsed.options.validate();
    return parsed;
  }

  const std::vector<std::string> accepted =
      parsed.kind == "gtsrb"    ? std::vector<std::string>{"size", "holdout", "split-seed", "gt"}
      : parsed.kind == "folder" ? std::vector<std::string>{"size", "holdout", "split-seed"}
                                : std::vector<std::string>{};
  std::string accepted_text;
  for (const std::string& key : accepted) {
    accepted_text += (accepted_text.empty() ? "" : ", ") + key;
  }
  accepted_text = accepted.empty() ? parsed.kind + " takes none" : "accepted: " + accepted_text;
  std::vector<std::string> seen;
  for (size_t start = comma + 1;;) {
    const size_t end = spec.find(',', start);
    const std::string option = spec.substr(start, end - start);
    const size_t equals = option.find('=');
    const std::string key = option.substr(0, equals);
    const std::string value = equals == std::string::npos ? "" : option.substr(equals + 1);
    if (equals == std::string::npos || key.empty()) {
      throw ConfigError("data: option '" + option + "' in '" + spec +
                        "' is not KEY=VALUE (options follow DIR after commas, so DIR cannot "
                        "contain one; " +
                        accepted_text + ")");
    }
    if (key != "size" && key != "holdout" && key != "split-seed" && key != "gt") {
      throw ConfigError("data: unknown option '" + key + "' in '" + spec + "' (" + accepted_text + ")");
    }
    if (std::find(accepted.begin(), accepted.end(), key) == accepted.end()) {
      throw ConfigError("data: option '" + key + "' does not apply to " + parsed.kind + " (" + accepted_text + ")");
    }
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
      throw ConfigError("data: option '" + key + "' is given twice in '" + spec + "'");
    }
    seen.push_back(key);
    auto bad_value = [&](const std::string& expected) {
      return ConfigError("data: bad value '" + value + "' for " + key + " in '" + spec + "' (expected " + expected +
                         ")");
    };
    // A number that fills the whole value; from_chars reads no sign, space or locale.
    auto parse_number = [&](auto& number, const std::string& expected) {
      const char* last = value.data() + value.size();
      const auto [end_ptr, error] = std::from_chars(value.data(), last, number);
      if (value.empty() || error != std::errc() || end_ptr != last) {
        throw bad_value(expected);
      }
    };
    if (key == "size") {
      const std::string expected = "an image side in pixels, 1.." + std::to_string(kMaxImageSize);
      parse_number(parsed.options.image_size, expected);
      if (parsed.options.image_size < 1 || parsed.options.image_size > kMaxImageSize) {
        throw bad_value(expected);
      }
    } else if (key == "holdout") {
      const std::string expected = "a fraction in (0, 1), such as 0.2";
      parse_number(parsed.options.holdout, expected);
      if (!(parsed.options.holdout > 0 && parsed.options.holdout < 1)) throw bad_value(expected);
    } else if (key == "split-seed") {
      parse_number(parsed.options.split_seed, "an unsigned 64-bit integer");
    } else {
      if (value.empty()) throw bad_value("the path of the test ground-truth CSV");
      parsed.options.gt_path = value;
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  parsed.options.validate();
  return parsed;
}

Dataset load_dataset(const std::string& spec, const DataOptions& options) {
  const DataSpec parsed = parse_data_spec(spec, options);
  Dataset dataset;
  if (parsed.kind == "fashion-mnist") {
    dataset = read_idx_dataset(parsed.dir.empty() ? kFashionMnistDefaultDir : parsed.dir, parsed.kind,
                               fashion_mnist_classes());
  } else if (parsed.kind == "mnist") {
    dataset = read_idx_dataset(parsed.dir, parsed.kind, digit_classes());
  } else if (parsed.kind == "svhn") {
    dataset = read_svhn(parsed.dir);
  } else if (parsed.kind == "gtsrb") {
    dataset = read_gtsrb(parsed.dir, parsed.options);
  } else {
    dataset = read_image_folder(parsed.dir, parsed.options);
  }
  dataset.validate();
  return dataset;
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

const std::vector<std::string>& digit_classes() {
  static const std::vector<std::string> names = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  return names;
}

const std::vector<std::string>& gtsrb_classes() {
  // The official names, in ClassId order.
  static const std::vector<std::string> names = {"Speed limit (20km/h)",
                                                 "Speed limit (30km/h)",
                                                 "Speed limit (50km/h)",
                                                 "Speed limit (60km/h)",
                                                 "Speed limit (70km/h)",
                                                 "Speed limit (80km/h)",
                                                 "End of speed limit (80km/h)",
                                                 "Speed limit (100km/h)",
                                                 "Speed limit (120km/h)",
                                                 "No passing",
                                                 "No passing for vehicles over 3.5 metric tons",
                                                 "Right-of-way at the next intersection",
                                                 "Priority road",
                                                 "Yield",
                                                 "Stop",
                                                 "No vehicles",
                                                 "Vehicles over 3.5 metric tons prohibited",
                                                 "No entry",
                                                 "General caution",
                                                 "Dangerous curve to the left",
                                                 "Dangerous curve to the right",
                                                 "Double curve",
                                                 "Bumpy road",
                                                 "Slippery road",
                                                 "Road narrows on the right",
                                                 "Road work",
                                                 "Traffic signals",
                                                 "Pedestrians",
                                                 "Children crossing",
                                                 "Bicycles crossing",
                                                 "Beware of ice/snow",
                                                 "Wild animals crossing",
                                                 "End of all speed and passing limits",
                                                 "Turn right ahead",
                                                 "Turn left ahead",
                                                 "Ahead only",
                                                 "Go straight or right",
                                                 "Go straight or left",
                                                 "Keep right",
                                                 "Keep left",
                                                 "Roundabout mandatory",
                                                 "End of no passing",
                                                 "End of no passing by vehicles over 3.5 metric tons"};
  return names;
}

}  // namespace defuse
