// defuse annotate: label the failure scenarios, one decision per scenario (DESIGN §3).
// Serves the labelling page (default), or exports, imports or auto-labels annotations.
#include <CLI/CLI.hpp>
#include <optional>

#include "cli.h"
#include "common.h"
#include "defuse/pipeline/annotate_stage.h"
#include "stop_signals.h"

namespace defuse::cli {

void bind_stage_options(CLI::App& app, AnnotateStageOptions& o) {
  app.add_option("--host", o.host,
                 "Address to serve the page on; anything but loopback requires the access token printed in the URL")
      ->capture_default_str();
  app.add_option("--port", o.port, "TCP port of the page (0 = any free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--token", o.token,
                 "Access token to require (default: a random one when --host is not loopback, none on loopback)");
  app.add_flag("--until-complete", o.until_complete,
               "Stop serving once every scenario is labelled or rejected (for unattended pipelines)");
  auto* exp = app.add_option("--export", o.export_file,
                             "Write every annotation (and a blank row per open scenario, in CSV) to FILE.json or "
                             "FILE.csv, for labelling elsewhere");
  auto* imp = app.add_option("--import", o.import_file,
                             "Add the annotations of FILE.json or FILE.csv (all or nothing; rows already stored "
                             "are skipped)");
  auto* aut = app.add_option("--auto", o.auto_source,
                             "Decide every scenario automatically from SOURCE, for unattended runs: 'judges' (the "
                             "judges' reading: their label where it differs from the classifier's, 'not a bug' "
                             "where it agrees, ambiguous otherwise) or 'seed' (its dominant seed label, unchecked); "
                             "human votes override automatic ones")
                  ->check(CLI::IsMember({"judges", "seed", "source"}));
  exp->excludes(imp)->excludes(aut);
  imp->excludes(aut);
  app.add_option("--annotator", o.annotator,
                 "Annotator name: for --auto (default 'auto'), for imported rows that name none, and "
                 "suggested by the page to a browser that remembers none");
}

namespace {

const Registrar registrar(
    "annotate",
    "Label the failure scenarios: serve the labelling page on 127.0.0.1, or export, import or auto-label annotations",
    [](CLI::App& app, Context& ctx) -> Action {
      auto args = std::make_shared<AnnotateStageOptions>();
      add_common_options(app, ctx);
      add_wait_option(app, ctx);
      bind_stage_options(app, *args);
      return [args](Context& ctx) {
        // Ctrl-C stops the page between two transactions (and a summary is printed); the
        // other modes keep the default handling.
        const bool serving = args->export_file.empty() && args->import_file.empty() && args->auto_source.empty();
        std::optional<StopSignals> signals;
        if (serving) signals.emplace();
        auto r = run_annotate_stage(
            ctx, *args, [&] { return signals && signals->requested(); },
            [&](const std::string& url) {
              // The URL goes to stdout at once (scripts parse it), unless stdout is reserved for --json.
              const std::string line = "open " + url;
              if (ctx.json)
                ctx.warn("annotate: " + line);
              else
                *ctx.out << line << "\n" << std::flush;
            });
        ctx.result(r.summary, r.text);
      };
    },
    50);

}  // namespace
}  // namespace defuse::cli
