#include "defuse/annotate/server.h"

#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "defuse/annotate/embedded_assets.h"
#include "defuse/base/error.h"
#include "defuse/base/html.h"
#include "defuse/base/sqlite.h"
#include "defuse/base/utf8.h"
#include "defuse/base/workspace.h"

namespace defuse {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kStage = "annotate";
constexpr size_t kMaxThumbnailBytes = 8 << 20;

std::string random_hex(size_t bytes) {
  std::random_device device;
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    unsigned value = device() & 0xff;
    out += digits[value >> 4];
    out += digits[value & 15];
  }
  return out;
}

// Compares secrets in time independent of where they differ.
bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size() || a.empty()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The host part of a Host header ("localhost:8080" → "localhost", "[::1]:80" → "::1").
std::string host_part(const std::string& header) {
  if (!header.empty() && header.front() == '[') {
    auto close = header.find(']');
    return lower(header.substr(1, close == std::string::npos ? std::string::npos : close - 1));
  }
  auto colon = header.find(':');
  if (colon != std::string::npos && header.find(':', colon + 1) != std::string::npos)
    return lower(header);  // bare IPv6
  return lower(header.substr(0, colon));
}

std::string content_type_for(const std::string& name) {
  auto ends = [&](const char* ext) {
    std::string e(ext);
    return name.size() >= e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".js") || ends(".mjs")) return "text/javascript; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  if (ends(".json")) return "application/json";
  return "application/octet-stream";
}

// Percent-encodes a relative path for a URL, keeping '/' and unreserved characters.
std::string url_path(const std::string& path) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

std::string cookie_value(const std::string& header, const std::string& name) {
  size_t pos = 0;
  while (pos < header.size()) {
    size_t end = header.find(';', pos);
    if (end == std::string::npos) end = header.size();
    std::string item = header.substr(pos, end - pos);
    size_t start = item.find_first_not_of(' ');
    if (start != std::string::npos) item = item.substr(start);
    if (item.compare(0, name.size() + 1, name + "=") == 0) return item.substr(name.size() + 1);
    pos = end + 1;
  }
  return "";
}

// Whether `inner` is `outer` or lies below it (both canonical).
bool is_within(const fs::path& inner, const fs::path& outer) {
  auto o = outer.begin(), i = inner.begin();
  for (; o != outer.end(); ++o, ++i)
    if (i == inner.end() || *o != *i) return false;
  return true;
}

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, status, {{"error", message}});
}

json scenario_json(const Scenario& s, const ScenarioSet& set) {
  const std::string prefix = std::string(kScenarioImageDir) + "/";
  auto images = [&](const std::vector<ScenarioImage>& list) {
    json out = json::array();
    for (const auto& image : list) {
      std::string relative = image.path.rfind(prefix, 0) == 0 ? image.path.substr(prefix.size()) : image.path;
      json item = {{"url", "/thumbs/" + url_path(relative)}, {"predicted", image.predicted}};
      if (image.label >= 0) item["label"] = image.label;
      if (image.judge >= 0) item["judge"] = image.judge;
      out.push_back(std::move(item));
    }
    return out;
  };
  return {{"id", s.id},
          {"component", s.component},
          {"weight", s.weight},
          {"failure_rate", s.failure_rate},
          {"seed_label", s.seed_label},
          {"seed_label_share", s.seed_label_share},
          {"predicted_label", s.predicted_label},
          {"predicted_share", s.predicted_share},
          {"members", s.members},
          {"neighbour_accuracy", s.neighbour_accuracy},
          {"score", s.score},
          {"samples", images(s.samples)},
          {"members_shown", images(s.member_images)},
          {"neighbours", images(s.neighbours)},
          {"validity", validity_json(s.validity)}};
}

json progress_json(const AnnotationProgress& p) {
  return {{"scenarios", p.scenarios},   {"labelled", p.labelled},   {"rejected", p.rejected},  {"ties", p.ties},
          {"unlabelled", p.unlabelled}, {"automatic", p.automatic}, {"complete", p.complete()}};
}

}  // namespace

bool is_loopback_host(const std::string& raw) {
  std::string host = lower(raw);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1") return true;
  // 127.0.0.0/8 in dotted-quad form.
  if (host.rfind("127.", 0) != 0) return false;
  int parts = 0;
  size_t pos = 0;
  while (pos <= host.size()) {
    size_t end = host.find('.', pos);
    if (end == std::string::npos) end = host.size();
    std::string part = host.substr(pos, end - pos);
    if (part.empty() || part.size() > 3 || !std::all_of(part.begin(), part.end(), ::isdigit) || std::stoi(part) > 255)
      return false;
    ++parts;
    pos = end + 1;
  }
  return parts == 4;
}

struct AnnotationServer::Impl {
  ServerOptions options;
  Workspace workspace;
  ScenarioSet scenarios;
  std::string csrf;
  fs::path thumbs_dir;  // canonical; empty when the workspace has none
  httplib::Server server;
  std::thread thread;
  int port = 0;
  std::atomic<bool> running{false};

  std::mutex db_mutex;  // one connection: statements and transactions must not interleave
  std::mutex change_mutex;
  std::condition_variable changed;
  std::atomic<bool> stopping{false};

  Impl(const fs::path& dir, ServerOptions opts) : options(std::move(opts)), workspace(dir) {
    check_option(!options.host.empty(), kStage, "--host is empty");
    check_option(options.port >= 0 && options.port <= 65535, kStage,
                 "--port " + std::to_string(options.port) + " is not a TCP port (0..65535; 0 = any free port)");
    check_option(options.max_body_bytes >= 1024, kStage, "the request size limit must be at least 1024 bytes");
    check_option(options.threads >= 2 && options.threads <= 256, kStage, "request threads must be 2..256");
    if (!is_loopback_host(options.host)) options.require_token = true;
    if (!options.token.empty()) {
      options.require_token = true;
      check_option(options.token.size() >= 8 && options.token.size() <= 256 &&
                       std::all_of(options.token.begin(), options.token.end(),
                                   [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_'; }),
                   kStage, "--token must be 8..256 letters, digits, '-' or '_'");
    }
    if (options.require_token && options.token.empty()) options.token = random_hex(24);
    check_option(options.annotator.empty() ||
                     (is_valid_utf8(options.annotator) && utf8_length(options.annotator) <= kMaxAnnotatorChars &&
                      !has_control_characters(options.annotator, false)),
                 kStage, "--annotator must be at most 64 characters of text");
    csrf = random_hex(24);
    scenarios = load_scenarios(workspace);
    ensure_annotation_tables(workspace.db());
    std::error_code ec;
    fs::path dir_path = workspace.path(kScenarioImageDir);
    if (fs::is_directory(dir_path, ec)) thumbs_dir = fs::canonical(dir_path, ec);
    if (ec) thumbs_dir.clear();
    setup_routes();
  }

  std::string cookie_name() const { return "defuse_token_" + std::to_string(port); }

  // The access token the request presents, if any.
  std::string presented_token(const httplib::Request& req) const {
    if (req.has_param("token")) return req.get_param_value("token");
    if (req.has_header("X-Defuse-Token")) return req.get_header_value("X-Defuse-Token");
    return cookie_value(req.get_header_value("Cookie"), cookie_name());
  }

  // Access control for every request: the token when required, else a loopback Host.
  bool admit(const httplib::Request& req, httplib::Response& res) {
    if (options.require_token) {
      if (!same_secret(presented_token(req), options.token)) {
        send_error(res, 403, "this page needs its access token: open the URL that `defuse annotate` printed");
        return false;
      }
    } else if (req.has_header("Host")) {
      std::string host = host_part(req.get_header_value("Host"));
      if (!is_loopback_host(host) && host != lower(options.host)) {
        send_error(res, 403,
                   "unexpected Host header '" + req.get_header_value("Host") +
                       "': this server answers only to loopback names");
        return false;
      }
    }
    if (req.method == "GET" || req.method == "HEAD") return true;
    // Writes: same origin, CSRF token, JSON.
    const std::string origin = "http://" + lower(req.get_header_value("Host"));
    if (req.has_header("Origin")) {
      if (lower(req.get_header_value("Origin")) != origin) {
        send_error(res, 403, "cross-origin request refused (Origin " + req.get_header_value("Origin") + ")");
        return false;
      }
    } else if (req.has_header("Referer")) {
      std::string referer = lower(req.get_header_value("Referer"));
      if (referer.compare(0, origin.size() + 1, origin + "/") != 0) {
        send_error(res, 403, "cross-origin request refused (Referer)");
        return false;
      }
    } else {
      send_error(res, 403, "request refused: no Origin or Referer header to check");
      return false;
    }
    if (!same_secret(req.get_header_value("X-CSRF-Token"), csrf)) {
      send_error(res, 403, "missing or wrong CSRF token: reload the page");
      return false;
    }
    std::string type = lower(req.get_header_value("Content-Type"));
    if (type.rfind("application/json", 0) != 0) {
      send_error(res, 415, "writes take application/json");
      return false;
    }
    return true;
  }

  // The newest complete distill run in the catalogue: a later one than the page's means the
  // scenarios shown are no longer the latest (the page says so).
  int64_t latest_distill_run() {
    Statement st = workspace.db().prepare(
        "SELECT id FROM stage_runs WHERE stage = 'distill' AND status = 'complete' ORDER BY id DESC LIMIT 1");
    return st.step() ? st.column_int(0) : scenarios.run_id;
  }

  json state_json() {
    std::lock_guard<std::mutex> lock(db_mutex);
    auto latest = latest_annotations(workspace.db(), scenarios.run_id);
    auto resolved = resolve_annotations(scenarios, latest);
    json list = json::array();
    size_t next = 0;
    for (size_t i = 0; i < scenarios.scenarios.size(); ++i) {
      const Scenario& s = scenarios.scenarios[i];
      json item = scenario_json(s, scenarios);
      json votes = json::array();
      while (next < latest.size() && latest[next].scenario_id < s.id) ++next;
      for (size_t k = next; k < latest.size() && latest[k].scenario_id == s.id; ++k)
        votes.push_back(annotation_json(latest[k], scenarios));
      item["votes"] = std::move(votes);
      item["resolution"] = resolution_json(resolved[i]);
      list.push_back(std::move(item));
    }
    return {{"workspace", workspace.dir().string()},
            {"workspace_name", workspace.dir().filename().string()},
            {"distill_run_id", scenarios.run_id},
            {"latest_distill_run_id", latest_distill_run()},
            {"class_names", scenarios.class_names},
            {"limits", {{"annotator", kMaxAnnotatorChars}, {"note", kMaxNoteChars}}},
            {"scenarios", std::move(list)},
            {"progress", progress_json(annotation_progress(resolved))}};
  }

  void post_annotation(const httplib::Request& req, httplib::Response& res) {
    if (req.body.size() > options.max_body_bytes) return send_error(res, 413, "request body too large");
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) return send_error(res, 400, "the body is not a JSON object");
    Annotation a;
    if (!body.contains("scenario") || !body["scenario"].is_number_integer())
      return send_error(res, 400, "\"scenario\" must be an integer");
    a.scenario_id = body["scenario"].get<int64_t>();
    if (!body.contains("annotator") || !body["annotator"].is_string())
      return send_error(res, 400, "\"annotator\" must be a string");
    a.annotator = body["annotator"].get<std::string>();
    if (body.contains("label") && !body["label"].is_null()) {
      if (!body["label"].is_number_integer()) return send_error(res, 400, "\"label\" must be an integer");
      a.label = body["label"].get<int64_t>();
    }
    if (body.contains("reject") && !body["reject"].is_null()) {
      if (!body["reject"].is_string()) return send_error(res, 400, "\"reject\" must be a string");
      a.reject = body["reject"].get<std::string>();
    }
    if (body.contains("note") && !body["note"].is_null()) {
      if (!body["note"].is_string()) return send_error(res, 400, "\"note\" must be a string");
      a.note = body["note"].get<std::string>();
    }
    Annotation stored;
    ResolvedScenario resolution;
    try {
      std::lock_guard<std::mutex> lock(db_mutex);
      stored = add_annotation(workspace.db(), scenarios, a);
      // This scenario's votes only: cheap however long the history is.
      auto votes = latest_annotations(workspace.db(), scenarios.run_id, stored.scenario_id);
      ScenarioSet one;
      one.run_id = scenarios.run_id;
      one.class_names = scenarios.class_names;
      one.scenarios.push_back(*scenarios.find(stored.scenario_id));
      resolution = resolve_annotations(one, votes).front();
      if (options.on_annotation) {
        std::string what =
            stored.label ? "labelled " + scenarios.class_names[*stored.label] : "rejected (" + stored.reject + ")";
        options.on_annotation(stored.annotator + ": scenario " + std::to_string(stored.scenario_id) + " " + what);
      }
    } catch (const ConfigError& e) {
      std::string message = e.what();
      if (message.rfind("annotate: ", 0) == 0) message = message.substr(10);
      return send_error(res, 400, message);
    }
    { std::lock_guard<std::mutex> lock(change_mutex); }
    changed.notify_all();
    send_json(res, 200,
              {{"annotation", annotation_json(stored, scenarios)}, {"resolution", resolution_json(resolution)}});
  }

  void serve_thumbnail(const httplib::Request& req, httplib::Response& res) {
    const std::string relative = req.matches[1];
    if (!is_normalised_relative_path(relative)) return send_error(res, 403, "forbidden path");
    if (relative.size() < 5 || relative.compare(relative.size() - 4, 4, ".png") != 0)
      return send_error(res, 403, "only .png thumbnails are served");
    if (thumbs_dir.empty()) return send_error(res, 404, "no such thumbnail");
    std::error_code ec;
    fs::path file = fs::canonical(thumbs_dir / relative, ec);  // resolves symlinks
    if (ec) return send_error(res, 404, "no such thumbnail");
    if (!is_within(file, thumbs_dir)) return send_error(res, 403, "forbidden path");
    if (!fs::is_regular_file(file, ec)) return send_error(res, 404, "no such thumbnail");
    auto size = fs::file_size(file, ec);
    if (ec || size > kMaxThumbnailBytes) return send_error(res, 404, "no such thumbnail");
    std::ifstream in(file, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in && !in.eof()) return send_error(res, 404, "no such thumbnail");
    res.set_header("Cache-Control", "no-cache");
    res.set_content(bytes, "image/png");
  }

  void serve_page(const httplib::Request& req, httplib::Response& res) {
    const EmbeddedAsset* page = find_annotate_asset("index.html");
    if (!page) return send_error(res, 500, "the page is not embedded in this build");
    std::string html(reinterpret_cast<const char*>(page->data), page->size);
    auto fill = [&html](const std::string& placeholder, const std::string& value) {
      for (size_t pos = 0; (pos = html.find(placeholder, pos)) != std::string::npos; pos += value.size())
        html.replace(pos, placeholder.size(), value);
    };
    fill("{{CSRF_TOKEN}}", csrf);
    fill("{{ANNOTATOR}}", html_escape(options.annotator));
    if (options.require_token)
      res.set_header("Set-Cookie", cookie_name() + "=" + options.token + "; Path=/; HttpOnly; SameSite=Strict");
    res.set_header("Cache-Control", "no-store");
    res.set_content(html, "text/html; charset=utf-8");
  }

  void setup_routes() {
    server.new_task_queue = [n = options.threads] { return new httplib::ThreadPool(static_cast<size_t>(n)); };
    server.set_payload_max_length(options.max_body_bytes);
    // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a second server
    // (ours or another program of the same user) bind the same port and share its requests.
    server.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    // Small request/response pairs on keep-alive connections: without this, Nagle's
    // algorithm and delayed ACKs stall each exchange by ~40 ms.
    server.set_tcp_nodelay(true);
    server.set_keep_alive_max_count(10000);
    server.set_keep_alive_timeout(2);
    server.set_default_headers({
        {"X-Content-Type-Options", "nosniff"},
        {"X-Frame-Options", "DENY"},
        {"Referrer-Policy", "same-origin"},
        {"Content-Security-Policy",
         "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
         "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"},
    });
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      return admit(req, res) ? httplib::Server::HandlerResponse::Unhandled : httplib::Server::HandlerResponse::Handled;
    });
    server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string message = "internal error";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        message = e.what();
      } catch (...) {
      }
      send_error(res, 500, message);
    });
    server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (res.body.empty()) send_error(res, res.status, res.status == 404 ? "not found" : "request refused");
    });
    server.Get("/", [this](const httplib::Request& req, httplib::Response& res) { serve_page(req, res); });
    server.Get("/index.html", [this](const httplib::Request& req, httplib::Response& res) { serve_page(req, res); });
    server.Get("/assets/(.+)", [](const httplib::Request& req, httplib::Response& res) {
      const EmbeddedAsset* asset = find_annotate_asset(req.matches[1].str());
      if (!asset) return send_error(res, 404, "no such asset");
      res.set_header("Cache-Control", "no-cache");
      res.set_content(reinterpret_cast<const char*>(asset->data), asset->size, content_type_for(asset->name));
    });
    server.Get("/api/state",
               [this](const httplib::Request&, httplib::Response& res) { send_json(res, 200, state_json()); });
    server.Post("/api/annotations",
                [this](const httplib::Request& req, httplib::Response& res) { post_annotation(req, res); });
    server.Get("/thumbs/(.*)",
               [this](const httplib::Request& req, httplib::Response& res) { serve_thumbnail(req, res); });
  }

  std::string url() const {
    std::string host = options.host;
    if (host == "0.0.0.0" || host == "::" || host == "[::]") {
      char name[256] = {0};
      host = ::gethostname(name, sizeof name - 1) == 0 && name[0] ? name : "localhost";
    } else if (host.find(':') != std::string::npos && host.front() != '[') {
      host = "[" + host + "]";
    }
    std::string out = "http://" + host + ":" + std::to_string(port) + "/";
    if (options.require_token) out += "?token=" + options.token;
    return out;
  }
};

AnnotationServer::AnnotationServer(const fs::path& workspace_dir, ServerOptions options)
    : impl_(std::make_unique<Impl>(workspace_dir, std::move(options))) {}

AnnotationServer::~AnnotationServer() { stop(); }

void AnnotationServer::start() {
  if (impl_->running) return;
  const auto& o = impl_->options;
  int port = o.port;
  if (port == 0) {
    port = impl_->server.bind_to_any_port(o.host);
    if (port <= 0) throw IoError("annotate: cannot listen on " + o.host + " (is it an address of this machine?)");
  } else if (!impl_->server.bind_to_port(o.host, port)) {
    throw IoError("annotate: cannot listen on " + o.host + ":" + std::to_string(port) +
                  " (in use? --port 0 picks a free port)");
  }
  impl_->port = port;
  impl_->stopping = false;
  impl_->running = true;
  auto listening_ended = std::make_shared<std::atomic<bool>>(false);
  impl_->thread = std::thread([this, listening_ended] {
    impl_->server.listen_after_bind();
    *listening_ended = true;
  });
  // httplib's stop() does nothing until the listening thread has marked itself running, so a
  // stop() right after start() would leave that thread blocked in accept() for ever: wait.
  while (!impl_->server.is_running() && !*listening_ended) std::this_thread::sleep_for(std::chrono::microseconds(200));
}

void AnnotationServer::stop() {
  if (!impl_ || !impl_->running) return;
  {
    std::lock_guard<std::mutex> lock(impl_->change_mutex);
    impl_->stopping = true;
  }
  impl_->changed.notify_all();
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->running = false;
}

bool AnnotationServer::running() const { return impl_->running; }
int AnnotationServer::port() const { return impl_->port; }
std::string AnnotationServer::url() const { return impl_->url(); }
const std::string& AnnotationServer::token() const { return impl_->options.token; }
const std::string& AnnotationServer::csrf_token() const { return impl_->csrf; }
const ScenarioSet& AnnotationServer::scenarios() const { return impl_->scenarios; }

std::vector<ResolvedScenario> AnnotationServer::resolved() {
  std::lock_guard<std::mutex> lock(impl_->db_mutex);
  return resolve_annotations(impl_->workspace.db(), impl_->scenarios);
}

bool AnnotationServer::wait_until_complete(const std::function<bool()>& should_stop) {
  while (true) {
    if (annotation_progress(resolved()).complete()) return true;
    if (should_stop && should_stop()) return false;
    std::unique_lock<std::mutex> lock(impl_->change_mutex);
    if (impl_->stopping) return false;
    impl_->changed.wait_for(lock, std::chrono::milliseconds(200));
    if (impl_->stopping) return annotation_progress(resolved()).complete();
  }
}

ServeResult serve_until_complete(const fs::path& workspace_dir, const ServerOptions& options,
                                 const std::function<void(const std::string&)>& on_listening,
                                 const std::function<bool()>& should_stop) {
  AnnotationServer server(workspace_dir, options);
  ServeResult result;
  result.progress = annotation_progress(server.resolved());
  if (result.progress.complete()) {
    result.complete = true;
    return result;
  }
  server.start();
  result.url = server.url();
  if (on_listening) on_listening(result.url);
  result.complete = server.wait_until_complete(should_stop);
  server.stop();
  result.progress = annotation_progress(server.resolved());
  return result;
}

}  // namespace defuse
