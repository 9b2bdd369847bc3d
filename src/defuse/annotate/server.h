// The labelling page of `defuse annotate` (DESIGN §3 "Annotation"): a small local HTTP
// server (cpp-httplib) that serves one page embedded in the binary, the workspace's scenario
// thumbnails, and a JSON API over the annotation store. Torch-free.
//
// Endpoints:
//   GET  /                  the page (index.html, with this server's CSRF token filled in)
//   GET  /assets/<name>     the page's embedded files (nothing else)
//   GET  /api/state         class names, scenarios (statistics, sample and neighbour image
//                           URLs), each annotator's current vote, the resolution, progress
//   POST /api/annotations   {"scenario", "annotator", "label" | "reject", "note"} → the stored
//                           annotation and the scenario's new resolution
//   GET  /thumbs/<path>     a .png under the workspace's kScenarioImageDir, nothing else
//
// Safety:
//   - Binds to 127.0.0.1 by default. Any other address requires the access token (printed
//     in the URL, as Jupyter does): requests without it get 403. The token may come as
//     ?token=, as an X-Defuse-Token header, or as the cookie the page sets on first visit.
//   - Without a token (loopback), the Host header must name a loopback host, so a DNS
//     rebinding page cannot reach the server through its own name.
//   - Writes (POST) need an Origin (or, lacking one, a Referer) equal to this server's
//     origin, the per-session CSRF token (X-CSRF-Token, given to the page in its HTML) and a
//     JSON content type; otherwise 403 (415 for the content type).
//   - Bodies over max_body_bytes get 413; every field is validated by the annotation store
//     (label in range, scenario exists, note and name bounded) → 400 with the reason.
//   - Files are served only from the embedded set and the thumbnail directory: the path
//     must be normalised (no "..", ".", empty segments, backslashes, absolute paths; the
//     server sees %-escapes decoded), end in .png, and its canonical form (symlinks
//     resolved) must stay inside the canonical thumbnail directory.
// Responses carry a strict Content-Security-Policy (same origin only), nosniff and
// no-store for the API.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "defuse/annotate/annotation_store.h"

namespace defuse {

struct ServerOptions {
  std::string host = "127.0.0.1";     // interface to bind; anything but loopback requires the token
  int port = 0;                       // TCP port; 0 = any free port (see AnnotationServer::port)
  std::string token;                  // access token; one is generated when required and empty
  bool require_token = false;         // require the token on loopback too (forced on elsewhere)
  size_t max_body_bytes = 16 * 1024;  // larger request bodies are refused (413); a vote is < 2 KiB
  int threads = 16;                   // request threads: browsers hold several keep-alive connections
  std::string annotator;              // name the page suggests when the browser remembers none
  // Called (from a request thread, never concurrently) after each stored annotation, with a
  // one-line description; for the CLI's log.
  std::function<void(const std::string&)> on_annotation;
};

// Whether `host` names the loopback interface: "localhost", 127.0.0.0/8, "::1" ("[::1]").
bool is_loopback_host(const std::string& host);

class AnnotationServer {
 public:
  // Opens the workspace and loads the scenarios of its latest distill run (StateError when
  // there is none); checks the options (ConfigError). Serves nothing until start().
  AnnotationServer(const std::filesystem::path& workspace_dir, ServerOptions options);
  ~AnnotationServer();  // stops
  AnnotationServer(const AnnotationServer&) = delete;
  AnnotationServer& operator=(const AnnotationServer&) = delete;

  // Binds (IoError when the address or port cannot be had) and serves on a background
  // thread; requests are accepted as soon as this returns.
  void start();
  // Stops serving and joins the background thread. Idempotent.
  void stop();
  bool running() const;

  int port() const;                  // the bound port (after start)
  std::string url() const;           // http://HOST:PORT/, with ?token=... when required
  const std::string& token() const;  // "" when not required
  const std::string& csrf_token() const;
  const ScenarioSet& scenarios() const;

  // The current resolution of every scenario (reads the catalogue).
  std::vector<ResolvedScenario> resolved();
  // Blocks until every scenario is decided (labelled or rejected), stop() is called, or
  // `should_stop` (polled every 200 ms) returns true. Wakes on each write, and polls the
  // catalogue too, so imports by another process count. Returns whether it was complete.
  bool wait_until_complete(const std::function<bool()>& should_stop = nullptr);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// What serve_until_complete did.
struct ServeResult {
  std::string url;              // where it served ("" if it returned without serving)
  AnnotationProgress progress;  // at the end
  bool complete = false;
};

// For unattended pipelines (`defuse run --annotate web`): serves the page of `workspace_dir`
// until every scenario is labelled or rejected, then stops. Calls `on_listening(url)` once
// the page is up. Returns at once, without serving, if everything is decided already; returns
// early (complete = false) when `should_stop` says so.
ServeResult serve_until_complete(const std::filesystem::path& workspace_dir, const ServerOptions& options,
                                 const std::function<void(const std::string& url)>& on_listening,
                                 const std::function<bool()>& should_stop = nullptr);

}  // namespace defuse
