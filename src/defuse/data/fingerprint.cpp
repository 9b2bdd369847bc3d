#include "defuse/data/fingerprint.h"

#include "defuse/base/hash.h"

namespace defuse {

std::string dataset_fingerprint(const Dataset& d) {
  Hasher h;
  int64_t shape[3] = {d.channels, d.height, d.width};
  h.update(shape, sizeof shape);
  for (const auto& name : d.class_names) h.update(name);
  for (const DataSplit* split : {&d.train, &d.test}) {
    int64_t n = split->size();
    h.update(&n, sizeof n);
    h.update(split->images.data(), split->images.size());
    h.update(split->labels.data(), split->labels.size() * sizeof(int64_t));
  }
  return h.hex();
}

}  // namespace defuse
