#include "common.h"

#include <fmt/format.h>

#include "defuse/base/progress.h"
#include "defuse/model/classifier_store.h"

namespace defuse::cli {

std::string resolve_data_spec(Workspace& workspace, const std::string& given) {
  if (!given.empty()) return given;
  if (auto record = workspace.latest(kClassifierStage); record && record->options.contains("data"))
    return record->options["data"].get<std::string>();
  return kDefaultData;
}

Dataset load_dataset_logged(Context& ctx, const std::string& spec, const DataOptions& options) {
  Progress timer(*ctx.err, "", 0, false);
  Dataset dataset = load_dataset(spec, options);
  ctx.info(fmt::format("data: {} ({}x{}x{}, {} classes, {} train / {} test images) in {}", dataset.source,
                       dataset.channels, dataset.height, dataset.width, dataset.num_classes(), dataset.train.size(),
                       dataset.test.size(), format_duration(timer.elapsed_seconds())));
  return dataset;
}

std::string percent(double fraction, int decimals) { return fmt::format("{:.{}f}%", 100.0 * fraction, decimals); }

}  // namespace defuse::cli
