#include "defuse/pipeline/annotate_stage.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "defuse/annotate/annotation_store.h"
#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"

namespace defuse {
namespace {

using nlohmann::json;

void require_workspace(const std::string& dir) {
  if (!std::filesystem::exists(std::filesystem::path(dir) / "defuse.db"))
    throw StateError("annotate: " + dir +
                     " is not a workspace (no defuse.db): run the stages up to `defuse distill` first");
}

json summary_json(Workspace& workspace, const ScenarioSet& set, const AnnotationProgress& p) {
  return {{"workspace", workspace.dir().string()},
          {"distill_run_id", set.run_id},
          {"scenarios", p.scenarios},
          {"labelled", p.labelled},
          {"rejected", p.rejected},
          {"ties", p.ties},
          {"unlabelled", p.unlabelled},
          {"automatic", p.automatic},
          {"complete", p.complete()}};
}

// Records the outcome as a run of the "annotate" stage, so that `defuse status` shows it; its
// inputs are the distill run and the decisions' fingerprint (what `defuse correct` depends on).
void record_stage(Workspace& workspace, const ScenarioSet& set, const std::string& mode) {
  auto resolved = resolve_annotations(workspace.db(), set);
  auto p = annotation_progress(resolved);
  auto distill = workspace.latest("distill");
  json inputs = {{"distill", distill ? distill->fingerprint : std::string()},
                 {"decisions", resolution_fingerprint(set.run_id, resolved)}};
  json metrics = {{"scenarios", p.scenarios}, {"labelled", p.labelled},      {"rejected", p.rejected},
                  {"ties", p.ties},           {"unlabelled", p.unlabelled},  {"automatic", p.automatic},
                  {"complete", p.complete()}, {"distill_run_id", set.run_id}};
  workspace.run_stage("annotate", {{"mode", mode}}, inputs, [&](int64_t) {
    return Workspace::StageOutput{metrics, {}, nullptr};
  });
}

std::string progress_text(const AnnotationProgress& p) {
  std::string text = fmt::format("{} scenarios: {} labelled, {} rejected", p.scenarios, p.labelled, p.rejected);
  if (p.ties) text += fmt::format(", {} tied", p.ties);
  if (p.unlabelled) text += fmt::format(", {} still open", p.unlabelled);
  return text;
}

// The typed figures, from the summary every way of annotating returns.
AnnotateStageResult finish(json summary, std::string text) {
  AnnotateStageResult r;
  r.scenarios = need(summary, "scenarios", "annotate").get<int64_t>();
  r.labelled = need(summary, "labelled", "annotate").get<int64_t>();
  r.rejected = need(summary, "rejected", "annotate").get<int64_t>();
  r.complete = need(summary, "complete", "annotate").get<bool>();
  r.summary = std::move(summary);
  r.text = std::move(text);
  return r;
}

}  // namespace

AnnotateStageResult export_annotations_file(const StageEnv& env, const std::string& file) {
  require_workspace(env.workspace);
  Workspace workspace(env.workspace);
  ScenarioSet set = load_scenarios(workspace);
  AnnotationFormat format = annotation_format_for(file);
  std::string text = export_annotations(workspace.db(), set, format);
  write_file_atomic(file, text);
  auto history = list_annotations(workspace.db(), set.run_id);
  auto progress = annotation_progress(resolve_annotations(set, history));
  json summary = summary_json(workspace, set, progress);
  summary["exported"] = history.size();
  summary["file"] = file;
  return finish(summary, fmt::format("annotate: exported {} annotations to {} ({})", history.size(), file,
                                     progress_text(progress)));
}

AnnotateStageResult import_annotations_file(const StageEnv& env, const std::string& file,
                                            const std::string& annotator) {
  require_workspace(env.workspace);
  auto lock = hold_workspace(env, "annotate");
  Workspace workspace(env.workspace);
  ScenarioSet set = load_scenarios(workspace);
  AnnotationFormat format = annotation_format_for(file);
  std::string text = read_file(file);
  ImportResult r = import_annotations(workspace.db(), set, text, format, file, annotator);
  record_stage(workspace, set, "import");
  auto progress = annotation_progress(resolve_annotations(workspace.db(), set));
  json summary = summary_json(workspace, set, progress);
  summary["imported"] = r.imported;
  summary["duplicates"] = r.duplicates;
  summary["blank"] = r.blank;
  summary["file"] = file;
  std::string skipped;
  if (r.duplicates || r.blank) skipped = fmt::format(" (skipped {} already stored, {} blank)", r.duplicates, r.blank);
  return finish(summary, fmt::format("annotate: imported {} annotations from {}{}: {}", r.imported, file, skipped,
                                     progress_text(progress)));
}

AnnotateStageResult annotate_automatically(const StageEnv& env, const std::string& source,
                                           const std::string& annotator_name) {
  require_workspace(env.workspace);
  check_option(source == "judges" || source == "seed" || source == "source", "annotate",
               "--auto must be judges or seed");
  auto lock = hold_workspace(env, "annotate");
  Workspace workspace(env.workspace);
  ScenarioSet set = load_scenarios(workspace);
  const std::string annotator = annotator_name.empty() ? "auto" : annotator_name;
  const bool judges = source == "judges";
  if (!judges)
    env.warn(
        "annotate: --auto seed labels every scenario with its seed's label without checking it: a decode that "
        "turned into another class (where the classifier is right) is labelled as its seed, and correcting on "
        "it makes the classifier worse; --auto judges checks each scenario with the judges");
  int64_t added = auto_label(workspace.db(), set, source, annotator);
  record_stage(workspace, set, judges ? "auto-judges" : "auto-seed");
  auto resolved = resolve_annotations(workspace.db(), set);
  auto progress = annotation_progress(resolved);
  json summary = summary_json(workspace, set, progress);
  summary["added"] = added;
  summary["annotator"] = annotator;
  summary["source"] = judges ? "judges" : "seed";
  std::string how = judges ? "from the judges' reading" : "with their seed label (unchecked)";
  int64_t not_a_bug = 0;
  for (const auto& s : resolved) not_a_bug += s.rejected() && s.reject_reason == kRejectNotABug;
  summary["not_a_bug"] = not_a_bug;
  return finish(
      summary,
      fmt::format(
          "annotate: decided {} scenarios {} as '{}' (automatic): {}{}", added, how, annotator, progress_text(progress),
          not_a_bug ? fmt::format(" ({} not a bug: the classifier is right there)", not_a_bug) : std::string()));
}

AnnotateStageResult serve_labelling_page(const StageEnv& env, ServeOptions options,
                                         const std::function<bool()>& stop_requested,
                                         const std::function<void(const std::string& url)>& on_url) {
  require_workspace(env.workspace);
  options.server.on_annotation = [&env](const std::string& line) { env.info("annotate: " + line); };
  AnnotationServer server(env.workspace, options.server);
  auto progress = annotation_progress(server.resolved());
  if (options.until_complete && progress.complete()) {
    Workspace workspace(env.workspace);
    return finish(summary_json(workspace, server.scenarios(), progress),
                  "annotate: every scenario is already labelled or rejected: " + progress_text(progress));
  }
  server.start();
  if (on_url) on_url(server.url());
  env.info(fmt::format("annotate: serving {} ({}); {}", env.workspace, progress_text(progress),
                       options.until_complete ? "stops when every scenario is decided, or on Ctrl-C" : "Ctrl-C stops"));
  if (options.until_complete) {
    server.wait_until_complete(stop_requested);
  } else {
    while (!stop_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  server.stop();
  progress = annotation_progress(server.resolved());
  Workspace workspace(env.workspace);
  record_stage(workspace, server.scenarios(), "page");
  json summary = summary_json(workspace, server.scenarios(), progress);
  summary["url"] = server.url();
  return finish(summary, "annotate: stopped: " + progress_text(progress));
}

AnnotateStageResult run_annotate_stage(const StageEnv& env, const AnnotateStageOptions& o,
                                       const std::function<bool()>& stop_requested,
                                       const std::function<void(const std::string& url)>& on_url) {
  const int modes = !o.export_file.empty() + !o.import_file.empty() + !o.auto_source.empty();
  check_option(modes <= 1, "annotate", "--export, --import and --auto exclude each other");
  if (!o.export_file.empty()) return export_annotations_file(env, o.export_file);
  if (!o.import_file.empty()) return import_annotations_file(env, o.import_file, o.annotator);
  if (!o.auto_source.empty()) return annotate_automatically(env, o.auto_source, o.annotator);
  ServeOptions serve;
  serve.server.host = o.host;
  serve.server.port = o.port;
  serve.server.token = o.token;
  serve.server.annotator = o.annotator;
  serve.until_complete = o.until_complete;
  return serve_labelling_page(
      env, serve, stop_requested ? stop_requested : [] { return false; }, on_url);
}

}  // namespace defuse
