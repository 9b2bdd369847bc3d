// defuse annotate: label the failure scenarios, one decision per scenario (DESIGN §3).
// Serves the labelling page (default), or exports, imports or auto-labels annotations.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <thread>

#include "cli.h"
#include "common.h"
#include "defuse/annotate/annotation_store.h"
#include "defuse/annotate/server.h"
#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/base/workspace.h"

namespace defuse::cli {
namespace {

using nlohmann::json;

struct AnnotateArgs {
  std::string host = "127.0.0.1";
  int port = 8765;
  std::string token;
  std::string export_file, import_file, auto_source;
  std::string annotator;
  bool until_complete = false;
};

volatile std::sig_atomic_t g_stop_requested = 0;
extern "C" void request_stop(int) { g_stop_requested = 1; }

// Installs SIGINT/SIGTERM handlers that ask the server loop to stop, and restores the
// previous ones when destroyed, so the catalogue is left between two transactions and a
// summary is printed.
class StopSignals {
 public:
  StopSignals() {
    g_stop_requested = 0;
    struct sigaction action {};
    action.sa_handler = request_stop;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  bool requested() const { return g_stop_requested != 0; }

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

void require_workspace(const std::string& dir) {
  if (!std::filesystem::exists(std::filesystem::path(dir) / "defuse.db"))
    throw StateError("annotate: " + dir + " is not a workspace (no defuse.db): run the stages up to `defuse distill` first");
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
  json metrics = {{"scenarios", p.scenarios},   {"labelled", p.labelled},   {"rejected", p.rejected},
                  {"ties", p.ties},             {"unlabelled", p.unlabelled}, {"automatic", p.automatic},
                  {"complete", p.complete()}, {"distill_run_id", set.run_id}};
  workspace.run_stage("annotate", {{"mode", mode}}, inputs,
                      [&](int64_t) { return Workspace::StageOutput{metrics, {}, nullptr}; });
}

std::string progress_text(const AnnotationProgress& p) {
  std::string text = fmt::format("{} scenarios: {} labelled, {} rejected", p.scenarios, p.labelled, p.rejected);
  if (p.ties) text += fmt::format(", {} tied", p.ties);
  if (p.unlabelled) text += fmt::format(", {} still open", p.unlabelled);
  return text;
}

void run_export(Context& ctx, const AnnotateArgs& args) {
  Workspace workspace(ctx.workspace);
  ScenarioSet set = load_scenarios(workspace);
  AnnotationFormat format = annotation_format_for(args.export_file);
  std::string text = export_annotations(workspace.db(), set, format);
  write_file_atomic(args.export_file, text);
  auto history = list_annotations(workspace.db(), set.run_id);
  auto progress = annotation_progress(resolve_annotations(set, history));
  json summary = summary_json(workspace, set, progress);
  summary["exported"] = history.size();
  summary["file"] = args.export_file;
  ctx.result(summary, fmt::format("annotate: exported {} annotations to {} ({})", history.size(), args.export_file,
                                  progress_text(progress)));
}

void run_import(Context& ctx, const AnnotateArgs& args) {
  auto lock = hold_workspace(ctx, "annotate");
  Workspace workspace(ctx.workspace);
  ScenarioSet set = load_scenarios(workspace);
  AnnotationFormat format = annotation_format_for(args.import_file);
  std::string text = read_file(args.import_file);
  ImportResult r = import_annotations(workspace.db(), set, text, format, args.import_file, args.annotator);
  record_stage(workspace, set, "import");
  auto progress = annotation_progress(resolve_annotations(workspace.db(), set));
  json summary = summary_json(workspace, set, progress);
  summary["imported"] = r.imported;
  summary["duplicates"] = r.duplicates;
  summary["blank"] = r.blank;
  summary["file"] = args.import_file;
  std::string skipped;
  if (r.duplicates || r.blank) skipped = fmt::format(" (skipped {} already stored, {} blank)", r.duplicates, r.blank);
  ctx.result(summary, fmt::format("annotate: imported {} annotations from {}{}: {}", r.imported, args.import_file,
                                  skipped, progress_text(progress)));
}

void run_auto(Context& ctx, const AnnotateArgs& args) {
  auto lock = hold_workspace(ctx, "annotate");
  Workspace workspace(ctx.workspace);
  ScenarioSet set = load_scenarios(workspace);
  const std::string annotator = args.annotator.empty() ? "auto" : args.annotator;
  const bool judges = args.auto_source == "judges";
  if (!judges)
    ctx.warn("annotate: --auto seed labels every scenario with its seed's label without checking it: a decode that "
             "turned into another class (where the classifier is right) is labelled as its seed, and correcting on "
             "it makes the classifier worse; --auto judges checks each scenario with the judges");
  int64_t added = auto_label(workspace.db(), set, args.auto_source, annotator);
  record_stage(workspace, set, judges ? "auto-judges" : "auto-seed");
  auto resolved = resolve_annotations(workspace.db(), set);
  auto progress = annotation_progress(resolved);
  json summary = summary_json(workspace, set, progress);
  summary["added"] = added;
  summary["annotator"] = annotator;
  summary["source"] = judges ? "judges" : "seed";
  std::string how = judges ? "from the judges' reading" : "with their seed label (unchecked)";
  int64_t not_a_bug = 0;
  for (const auto& r : resolved) not_a_bug += r.rejected() && r.reject_reason == kRejectNotABug;
  summary["not_a_bug"] = not_a_bug;
  ctx.result(summary, fmt::format("annotate: decided {} scenarios {} as '{}' (automatic): {}{}", added, how, annotator,
                                  progress_text(progress),
                                  not_a_bug ? fmt::format(" ({} not a bug: the classifier is right there)", not_a_bug)
                                            : std::string()));
}

void run_serve(Context& ctx, const AnnotateArgs& args) {
  ServerOptions options;
  options.host = args.host;
  options.port = args.port;
  options.token = args.token;
  options.annotator = args.annotator;
  options.on_annotation = [&ctx](const std::string& line) { ctx.info("annotate: " + line); };
  AnnotationServer server(ctx.workspace, options);
  auto progress = annotation_progress(server.resolved());
  if (args.until_complete && progress.complete()) {
    Workspace workspace(ctx.workspace);
    ctx.result(summary_json(workspace, server.scenarios(), progress),
               "annotate: every scenario is already labelled or rejected: " + progress_text(progress));
    return;
  }
  StopSignals signals;
  server.start();
  // The URL goes to stdout at once (scripts parse it), unless stdout is reserved for --json.
  const std::string line = "open " + server.url();
  if (ctx.json) ctx.warn("annotate: " + line);
  else *ctx.out << line << "\n" << std::flush;
  ctx.info(fmt::format("annotate: serving {} ({}); {}", ctx.workspace, progress_text(progress),
                       args.until_complete ? "stops when every scenario is decided, or on Ctrl-C" : "Ctrl-C stops"));
  if (args.until_complete) {
    server.wait_until_complete([&] { return signals.requested(); });
  } else {
    while (!signals.requested()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  server.stop();
  progress = annotation_progress(server.resolved());
  Workspace workspace(ctx.workspace);
  record_stage(workspace, server.scenarios(), "page");
  json summary = summary_json(workspace, server.scenarios(), progress);
  summary["url"] = server.url();
  ctx.result(summary, "annotate: stopped: " + progress_text(progress));
}

const Registrar registrar(
    "annotate",
    "Label the failure scenarios: serve the labelling page on 127.0.0.1, or export, import or auto-label annotations",
    [](CLI::App& app, Context& ctx) -> Action {
      auto args = std::make_shared<AnnotateArgs>();
      add_common_options(app, ctx);
      add_wait_option(app, ctx);
      app.add_option("--host", args->host,
                     "Address to serve the page on; anything but loopback requires the access token printed in the URL")
          ->capture_default_str();
      app.add_option("--port", args->port, "TCP port of the page (0 = any free port)")
          ->check(CLI::Range(0, 65535))
          ->capture_default_str();
      app.add_option("--token", args->token,
                     "Access token to require (default: a random one when --host is not loopback, none on loopback)");
      app.add_flag("--until-complete", args->until_complete,
                   "Stop serving once every scenario is labelled or rejected (for unattended pipelines)");
      auto* exp = app.add_option("--export", args->export_file,
                                 "Write every annotation (and a blank row per open scenario, in CSV) to FILE.json or "
                                 "FILE.csv, for labelling elsewhere");
      auto* imp = app.add_option("--import", args->import_file,
                                 "Add the annotations of FILE.json or FILE.csv (all or nothing; rows already stored "
                                 "are skipped)");
      auto* aut = app.add_option("--auto", args->auto_source,
                                 "Decide every scenario automatically from SOURCE, for unattended runs: 'judges' (the "
                                 "judges' reading: their label where it differs from the classifier's, 'not a bug' "
                                 "where it agrees, ambiguous otherwise) or 'seed' (its dominant seed label, unchecked); "
                                 "human votes override automatic ones")
                      ->check(CLI::IsMember({"judges", "seed", "source"}));
      exp->excludes(imp)->excludes(aut);
      imp->excludes(aut);
      app.add_option("--annotator", args->annotator,
                     "Annotator name: for --auto (default 'auto'), for imported rows that name none, and "
                     "suggested by the page to a browser that remembers none");
      return [args](Context& ctx) {
        require_workspace(ctx.workspace);
        if (!args->export_file.empty()) return run_export(ctx, *args);
        if (!args->import_file.empty()) return run_import(ctx, *args);
        if (!args->auto_source.empty()) return run_auto(ctx, *args);
        run_serve(ctx, *args);
      };
    },
    50);

}  // namespace
}  // namespace defuse::cli
