// Dataset::validate, the `--data` spec parser and the fixed class-name lists.
#include "defuse/data/dataset.h"

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
    throw DataError(where + "the " + which + " split has " + std::to_string(split.size()) +
                    " labels but " + std::to_string(split.images.size()) +
                    " pixel bytes (expected " +
                    std::to_string(split.size() * dataset.image_size()) + ")");
  }
  for (int64_t i = 0; i < split.size(); ++i) {
    if (split.labels[i] < 0 || split.labels[i] >= dataset.num_classes()) {
      throw DataError(where + "label " + std::to_string(split.labels[i]) + " of " + which +
                      " example " + std::to_string(i) + " is outside 0.." +
                      std::to_string(dataset.num_classes() - 1));
    }
  }
}

}  // namespace

void Dataset::validate() const {
  const std::string where = "data: " + name + " (" + source + "): ";
  if (channels != 1 && channels != 3) {
    throw DataError(where + "images have " + std::to_string(channels) +
                    " channels (expected 1 or 3)");
  }
  if (height <= 0 || width <= 0) {
    throw DataError(where + "bad image size " + std::to_string(width) + "x" +
                    std::to_string(height));
  }
  if (num_classes() < 2) {
    throw DataError(where + "needs at least 2 classes, has " + std::to_string(num_classes()));
  }
  validate_split(*this, train, "train");
  validate_split(*this, test, "test");
}

void DataOptions::validate() const {
  check_option(image_size >= 1 && image_size <= kMaxImageSize, "data",
               "image size must be in 1.." + std::to_string(kMaxImageSize) + ", got " +
                   std::to_string(image_size));
}

Dataset load_dataset(const std::string& spec, const DataOptions& options) {
  options.validate();
  const size_t colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const std::string dir = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (colon != std::string::npos && dir.empty()) {
    throw ConfigError("data: '" + spec + "' names no directory after ':'");
  }
  if (kind != "fashion-mnist" && kind != "mnist" && kind != "svhn" && kind != "gtsrb" &&
      kind != "folder") {
    throw ConfigError("data: unknown dataset '" + spec +
                      "' (expected fashion-mnist[:DIR], mnist:DIR, svhn:DIR, gtsrb:DIR or "
                      "folder:DIR)");
  }
  if (dir.empty() && kind != "fashion-mnist") {
    throw ConfigError("data: '" + spec + "' needs a directory: " + kind + ":DIR");
  }
  Dataset dataset;
  if (kind == "fashion-mnist") {
    dataset = read_idx_dataset(dir.empty() ? kFashionMnistDefaultDir : dir, kind,
                               fashion_mnist_classes());
  } else if (kind == "mnist") {
    dataset = read_idx_dataset(dir, kind, digit_classes());
  } else if (kind == "svhn") {
    dataset = read_svhn(dir);
  } else if (kind == "gtsrb") {
    dataset = read_gtsrb(dir, options);
  } else {
    dataset = read_image_folder(dir, options);
  }
  dataset.validate();
  return dataset;
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                 "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return names;
}

const std::vector<std::string>& digit_classes() {
  static const std::vector<std::string> names = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  return names;
}

const std::vector<std::string>& gtsrb_classes() {
  // The official names, in ClassId order.
  static const std::vector<std::string> names = {
      "Speed limit (20km/h)",
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
