// Stage annotate: one decision per failure scenario (a label, or rejected), automatic (the
// judges' reading, or the unchecked seed label), imported from a file, or made by a person on
// the labelling page. Each way records an "annotate" stage run, whose inputs are the distill
// run and the decisions' fingerprint (what correct depends on).
#pragma once

#include <functional>
#include <string>

#include "defuse/annotate/server.h"
#include "defuse/pipeline/stage_support.h"

namespace defuse {

// How `annotate` decides: exactly one of export_file, import_file and auto_source, or none
// (serve the labelling page).
struct AnnotateStageOptions {
  std::string host = "127.0.0.1";  // the page's address; anything but loopback requires the token
  int port = 8765;                 // the page's TCP port (0: any free port)
  std::string token;               // the page's access token ("": a random one off loopback)
  std::string export_file, import_file, auto_source;
  std::string annotator;        // for automatic and imported decisions, and the page's suggestion
  bool until_complete = false;  // serving: return once every scenario is decided
};

struct AnnotateStageResult : StageResult {
  int64_t scenarios = 0, labelled = 0, rejected = 0;
  bool complete = false;  // every scenario decided
};

// Decides every scenario from `source`: "judges" (their label where it differs from the
// classifier's, not a bug where it agrees, ambiguous otherwise) or "seed" (unchecked, with a
// warning). Human votes override automatic ones.
AnnotateStageResult annotate_automatically(const StageEnv& env, const std::string& source,
                                           const std::string& annotator = "");

// Adds the annotations of FILE.json or FILE.csv (all or nothing; rows already stored skipped).
AnnotateStageResult import_annotations_file(const StageEnv& env, const std::string& file,
                                            const std::string& annotator = "");

// Writes every annotation (and a blank row per open scenario, in CSV) to FILE.json/.csv.
AnnotateStageResult export_annotations_file(const StageEnv& env, const std::string& file);

struct ServeOptions {
  ServerOptions server;
  bool until_complete = false;  // return once every scenario is decided
};

// Serves the labelling page until `stop_requested` says so (or, with until_complete, every
// scenario is decided); `on_url` is called once with the page's address when it serves.
AnnotateStageResult serve_labelling_page(const StageEnv& env, ServeOptions options,
                                         const std::function<bool()>& stop_requested,
                                         const std::function<void(const std::string& url)>& on_url);

// One of the above, as `options` say; `stop_requested` and `on_url` are the page's.
AnnotateStageResult run_annotate_stage(const StageEnv& env, const AnnotateStageOptions& options,
                                       const std::function<bool()>& stop_requested = nullptr,
                                       const std::function<void(const std::string& url)>& on_url = nullptr);

}  // namespace defuse
