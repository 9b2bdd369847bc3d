#include "defuse/suite/suite.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/base/hash.h"
#include "defuse/base/image_io.h"
#include "defuse/correct/correct.h"
#include "defuse/data/dataset.h"
#include "defuse/judge/judges.h"
#include "defuse/model/classifier.h"
#include "defuse/model/device.h"
#include "defuse/model/tensors.h"
#include "defuse/model/vae.h"

namespace defuse {

namespace fs = std::filesystem;

void SuiteOptions::validate() const {
  check_option(images_per_scenario > 0, "export-suite", "--images must be positive");
  check_option(max_draws >= images_per_scenario, "export-suite", "--max-draws must be at least --images");
  check_option(round_size > 0, "export-suite", "the round size must be positive");
  check_option(min_accuracy >= 0 && min_accuracy <= 1, "export-suite", "--min-accuracy must be in [0, 1]");
  check_option(batch_size > 0, "export-suite", "--batch-size must be positive");
}

Suite build_suite(Vae& vae, Classifier& original, JudgePanel& judges, const VerdictRule& rule,
                  const std::vector<LabelledScenario>& scenarios, double tau, SuiteInfo info,
                  const SuiteOptions& options) {
  options.validate();
  const auto device = parse_device(options.device, "export-suite");
  Suite suite;
  info.images = options.failing_only ? "failing" : "confirmed";
  info.tau = tau;
  info.seed = options.seed;
  info.scenario_list.clear();
  for (const auto& s : scenarios) {
    // One scenario at a time, in rounds, each round from its own stream of the scenario's seed:
    // the images of a scenario depend only on (seed, scenario id), not on the other scenarios.
    const uint64_t scenario_seed = derive_seed(options.seed, static_cast<uint64_t>(s.id));
    std::vector<at::Tensor> kept, codes, predictions, probabilities;
    int64_t found = 0, draws = 0;
    for (uint64_t round = 0; found < options.images_per_scenario && draws < options.max_draws; ++round) {
      const int64_t n = std::min(options.round_size, options.max_draws - draws);
      LabelledImages d = sample_scenarios(vae, {s}, n, tau, scenario_seed, options.stream + 16 * round, options.device,
                                          options.batch_size);
      draws += n;
      if (!judges.empty()) d = keep_confirmed_draws(d, judges, rule, 1, options.device);
      if (d.size() == 0) continue;
      auto probs = torch::softmax(predict_logits(original, d.images, options.batch_size, device), 1);
      auto [p, pred] = probs.max(1);
      auto keep = options.failing_only ? pred.ne(s.label).nonzero().view(-1) : torch::arange(d.size());
      keep = keep.slice(0, 0, options.images_per_scenario - found);
      kept.push_back(d.images.index_select(0, keep));
      codes.push_back(d.codes.index_select(0, keep));
      predictions.push_back(pred.index_select(0, keep));
      probabilities.push_back(p.index_select(0, keep));
      found += keep.size(0);
    }
    if (found == 0) {
      info.left_out.push_back(
          {s.id, !options.failing_only ? fmt::format("the judges read none of {} draws as its label", draws)
                 : judges.empty()      ? fmt::format("the classifier misread none of {} draws", draws)
                                       : fmt::format("none of {} draws was both read as its label by the judges and "
                                                          "misread by the classifier",
                                                     draws)});
      continue;
    }
    SuiteScenarioInfo sc;
    sc.id = s.id;
    sc.label = s.label;
    sc.verdict = s.verdict;
    sc.min_accuracy = options.min_accuracy;
    sc.draws = draws;
    auto mean = s.mean.to(torch::kCPU, torch::kFloat32).contiguous();
    auto cov = s.covariance.to(torch::kCPU, torch::kFloat32).contiguous();
    sc.mean.assign(mean.data_ptr<float>(), mean.data_ptr<float>() + mean.numel());
    sc.covariance.assign(cov.data_ptr<float>(), cov.data_ptr<float>() + cov.numel());
    auto images = torch::cat(kept).contiguous();
    auto pred = torch::cat(predictions).contiguous();
    auto prob = torch::cat(probabilities).contiguous();
    for (int64_t i = 0; i < found; ++i) {
      SuiteImageInfo im;
      im.file = fmt::format("images/s{:02d}/{:04d}.png", s.id, i);
      im.original_prediction = pred[i].item<int64_t>();
      im.original_probability = prob[i].item<float>();
      sc.images.push_back(std::move(im));
    }
    // The most common wrong answer of the original on the kept images.
    auto wrong = pred.masked_select(pred.ne(s.label));
    if (wrong.numel() > 0) sc.predicted_label = torch::bincount(wrong).argmax().item<int64_t>();
    info.scenario_list.push_back(std::move(sc));
    suite.images.push_back(images);
    suite.codes.push_back(torch::cat(codes).contiguous());
  }
  suite.info = std::move(info);
  return suite;
}

void save_suite(Suite& suite, const fs::path& dir) {
  DirectoryWrite out(dir, kSuiteFile, "export-suite");
  for (size_t k = 0; k < suite.info.scenario_list.size(); ++k) {
    auto& sc = suite.info.scenario_list[k];
    const auto& images = suite.images.at(k);
    for (size_t i = 0; i < sc.images.size(); ++i) {
      auto png = encode_png(tensor_to_image(images[static_cast<int64_t>(i)]));
      const std::string_view bytes(reinterpret_cast<const char*>(png.data()), png.size());
      sc.images[i].hash = hash_bytes(bytes);
      out.write(sc.images[i].file, bytes);
    }
  }
  out.write(kSuiteFile, suite_json(suite.info).dump(1) + "\n");
  out.commit();
}

Suite load_suite(const fs::path& dir) {
  const fs::path file = dir / kSuiteFile;
  if (!fs::is_directory(dir)) throw IoError("check: suite " + dir.string() + " is not a directory");
  if (!fs::exists(file))
    throw IoError("check: " + file.string() + " not found: not a suite made by `defuse export-suite`");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(file));
  } catch (const nlohmann::json::parse_error& e) {
    throw DataError("check: " + file.string() + ": not valid JSON (" + e.what() + ")");
  }
  Suite suite;
  suite.info = parse_suite_json(j, "check: " + file.string());
  const auto& info = suite.info;
  for (const auto& sc : info.scenario_list) {
    auto images =
        torch::empty({static_cast<int64_t>(sc.images.size()), info.channels, info.height, info.width}, torch::kUInt8);
    for (size_t i = 0; i < sc.images.size(); ++i) {
      const std::string path = (dir / sc.images[i].file).string();
      auto bytes = read_file_bytes(path, "check");
      const std::string_view view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      if (!sc.images[i].hash.empty() && hash_bytes(view) != sc.images[i].hash)
        throw DataError("check: " + path + ": its content changed since the suite was exported (hash mismatch)");
      Image image = decode_image(bytes.data(), bytes.size(), "check: " + path);
      if (image.channels != info.channels)
        throw DataError(
            fmt::format("check: {}: {} channels, the suite's images have {}", path, image.channels, info.channels));
      if (image.width != info.width || image.height != info.height)
        throw DataError(fmt::format("check: {}: {}x{} pixels, the suite's images are {}x{}", path, image.width,
                                    image.height, info.width, info.height));
      copy_to_chw(image, images[static_cast<int64_t>(i)].data_ptr<uint8_t>());
    }
    suite.images.push_back(images);
  }
  return suite;
}

void check_model_fits(Classifier& model, const SuiteInfo& info, const std::string& what) {
  Dataset shape;
  shape.channels = info.channels;
  shape.height = info.height;
  shape.width = info.width;
  shape.class_names = info.class_names;
  try {
    validate_classifier(model, shape, what, "the suite");
  } catch (const ModelError& e) {
    throw ModelError(std::string("check: ") + e.what());
  }
}

CheckReport check_suite(Classifier& model, const Suite& suite, std::optional<double> min_accuracy, c10::Device device,
                        int64_t batch_size) {
  CheckReport report;
  report.class_names = suite.info.class_names;
  report.original_test_accuracy = suite.info.original_test_accuracy;
  for (size_t k = 0; k < suite.info.scenario_list.size(); ++k) {
    const auto& sc = suite.info.scenario_list[k];
    auto pred = predict_logits(model, suite.images.at(k), batch_size, device).argmax(1);
    ScenarioCheck c;
    c.id = sc.id;
    c.label = sc.label;
    c.verdict = sc.verdict;
    c.images = pred.size(0);
    c.correct = pred.eq(sc.label).sum().item<int64_t>();
    c.accuracy = static_cast<double>(c.correct) / static_cast<double>(c.images);
    c.interval = wilson_interval(c.correct, c.images);
    c.min_accuracy = min_accuracy.value_or(sc.min_accuracy);
    auto wrong = pred.masked_select(pred.ne(sc.label));
    if (wrong.numel() > 0) {
      auto counts = torch::bincount(wrong);
      c.top_wrong = counts.argmax().item<int64_t>();
      c.top_wrong_count = counts.max().item<int64_t>();
    }
    report.scenarios.push_back(c);
  }
  return report;
}

}  // namespace defuse
