// HTTP-level tests of the labelling page's server: every endpoint and every refusal, in
// process, with httplib clients against a server on a free port.
#include "defuse/annotate/server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "defuse/annotate/embedded_assets.h"
#include "defuse/base/error.h"
#include "defuse/base/sqlite.h"
#include "defuse/base/workspace.h"
#include "support/scenario_support.h"
#include "support/test_support.h"

namespace defuse {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

int64_t stored_annotations(const fs::path& dir) {
  Workspace ws(dir);
  ensure_annotation_tables(ws.db());
  Statement s = ws.db().prepare("SELECT COUNT(*) FROM annotations");
  s.step();
  return s.column_int(0);
}

class Server : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_.path() / "ws";
    set_ = test::make_scenario_workspace(dir_, {4, 3, 2});
  }

  void start(ServerOptions options = {}) {
    server_ = std::make_unique<AnnotationServer>(dir_, options);
    server_->start();
  }
  std::string origin() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
  std::unique_ptr<httplib::Client> client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    c->set_url_encode(false);  // send paths exactly as written (for the traversal tests)
    c->set_keep_alive(true);
    c->set_tcp_nodelay(true);
    c->set_connection_timeout(5);
    c->set_read_timeout(10);
    return c;
  }
  httplib::Headers write_headers() const { return {{"Origin", origin()}, {"X-CSRF-Token", server_->csrf_token()}}; }
  httplib::Result post(const json& body, httplib::Headers headers) {
    return client()->Post("/api/annotations", headers, body.dump(), "application/json");
  }
  httplib::Result post(const json& body) { return post(body, write_headers()); }
  json state() {
    auto r = client()->Get("/api/state");
    EXPECT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    return json::parse(r->body);
  }
  std::string error_of(const httplib::Result& r) { return json::parse(r->body).value("error", ""); }

  test::TempDir tmp_;
  fs::path dir_;
  ScenarioSet set_;
  std::unique_ptr<AnnotationServer> server_;
};

// ---- endpoints ----

TEST_F(Server, StateSaysWhenDistillHasRunAgainSinceThePageStarted) {
  start();
  EXPECT_EQ(state()["latest_distill_run_id"], set_.run_id);
  {
    // Another process's distill completes while the page is open.
    Workspace ws(dir_);
    int64_t id = ws.begin_stage("distill", json::object(), json::object());
    ws.complete_stage(id, json::object(), {});
  }
  json s = state();
  EXPECT_EQ(s["distill_run_id"], set_.run_id);  // the cards stay those of the run being labelled
  EXPECT_GT(s["latest_distill_run_id"].get<int64_t>(), set_.run_id);
}

TEST_F(Server, ServesThePageWithItsCsrfTokenAndStrictHeaders) {
  start();
  EXPECT_EQ(server_->url(), origin() + "/");
  EXPECT_TRUE(server_->token().empty());
  auto r = client()->Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_TRUE(test::contains(r->body, "<meta name=\"defuse-csrf\" content=\"" + server_->csrf_token() + "\">"));
  EXPECT_FALSE(test::contains(r->body, "{{CSRF_TOKEN}}"));
  EXPECT_EQ(server_->csrf_token().size(), 48u);
  EXPECT_TRUE(test::contains(r->get_header_value("Content-Security-Policy"), "default-src 'none'"));
  EXPECT_TRUE(test::contains(r->get_header_value("Content-Security-Policy"), "frame-ancestors 'none'"));
  EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(r->get_header_value("Cache-Control"), "no-store");
  EXPECT_EQ(client()->Get("/index.html")->status, 200);
  EXPECT_TRUE(test::contains(r->body, "<meta name=\"defuse-annotator\" content=\"\">"));
}

TEST_F(Server, SuggestsTheAnnotatorNameEscaped) {
  ServerOptions options;
  options.annotator = "o'neil <\"&>";
  start(options);
  auto r = client()->Get("/");
  EXPECT_TRUE(test::contains(r->body, "<meta name=\"defuse-annotator\" content=\"o&#39;neil &lt;&quot;&amp;&gt;\">"))
      << r->body;
  options.annotator = std::string(65, 'x');
  EXPECT_THROW(AnnotationServer(dir_, options), ConfigError);
}

TEST_F(Server, ServesEmbeddedAssetsOnly) {
  start();
  ASSERT_GE(kAnnotateAssetsCount, 4u);
  for (const char* name : {"app.js", "app.css", "favicon.svg"}) {
    auto r = client()->Get(std::string("/assets/") + name);
    ASSERT_TRUE(r) << name;
    EXPECT_EQ(r->status, 200) << name;
    const EmbeddedAsset* asset = find_annotate_asset(name);
    ASSERT_NE(asset, nullptr);
    EXPECT_EQ(r->body, std::string(reinterpret_cast<const char*>(asset->data), asset->size));
  }
  EXPECT_EQ(client()->Get("/assets/app.js")->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(client()->Get("/assets/app.css")->get_header_value("Content-Type"), "text/css; charset=utf-8");
  EXPECT_EQ(client()->Get("/assets/nothing.js")->status, 404);
  EXPECT_EQ(client()->Get("/assets/../defuse.db")->status, 404);
  EXPECT_EQ(client()->Get("/assets/%2e%2e/defuse.db")->status, 404);
  EXPECT_EQ(client()->Get("/defuse.db")->status, 404);
  EXPECT_EQ(client()->Get("/nope")->status, 404);
}

TEST_F(Server, StateListsScenariosImagesVotesAndProgress) {
  start();
  json s = state();
  EXPECT_EQ(s["distill_run_id"], set_.run_id);
  EXPECT_EQ(s["class_names"].size(), 10u);
  EXPECT_EQ(s["workspace_name"], "ws");
  EXPECT_EQ(s["limits"]["note"], 1000);
  ASSERT_EQ(s["scenarios"].size(), 4u);
  const json& first = s["scenarios"][0];
  EXPECT_EQ(first["id"], 1);
  EXPECT_EQ(first["seed_label"], set_.scenarios[0].seed_label);
  EXPECT_EQ(first["predicted_label"], set_.scenarios[0].predicted_label);
  EXPECT_DOUBLE_EQ(first["failure_rate"].get<double>(), set_.scenarios[0].failure_rate);
  EXPECT_EQ(first["members"], set_.scenarios[0].members);
  ASSERT_EQ(first["samples"].size(), 3u);
  ASSERT_EQ(first["neighbours"].size(), 2u);
  EXPECT_EQ(first["samples"][0]["url"], "/thumbs/run-1/s1-sample-0.png");
  EXPECT_FALSE(first["samples"][0].contains("label"));
  EXPECT_EQ(first["neighbours"][0]["label"], set_.scenarios[0].seed_label);
  EXPECT_TRUE(first["votes"].empty());
  EXPECT_EQ(first["resolution"]["status"], "unlabelled");
  EXPECT_EQ(s["progress"]["scenarios"], 4);
  EXPECT_EQ(s["progress"]["unlabelled"], 4);
  EXPECT_EQ(s["progress"]["complete"], false);
  // Every image URL of the state is served.
  for (const auto& scenario : s["scenarios"])
    for (const char* kind : {"samples", "neighbours"})
      for (const auto& image : scenario[kind]) {
        auto r = client()->Get(image["url"].get<std::string>());
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 200) << image["url"];
        EXPECT_EQ(r->get_header_value("Content-Type"), "image/png");
        EXPECT_EQ(r->body.substr(1, 3), "PNG");
      }
}

TEST_F(Server, APostIsStoredAtOnceAndEveryoneSeesIt) {
  std::vector<std::string> log;
  ServerOptions options;
  options.on_annotation = [&](const std::string& line) { log.push_back(line); };
  start(options);
  auto r = post({{"scenario", 2}, {"annotator", "alice"}, {"label", 3}, {"note", "a dress, clearly"}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json body = json::parse(r->body);
  EXPECT_EQ(body["annotation"]["scenario"], 2);
  EXPECT_EQ(body["annotation"]["label"], 3);
  EXPECT_EQ(body["annotation"]["label_name"], "Dress");
  EXPECT_EQ(body["annotation"]["note"], "a dress, clearly");
  EXPECT_EQ(body["resolution"]["status"], "labelled");
  EXPECT_EQ(body["resolution"]["label"], 3);
  EXPECT_EQ(stored_annotations(dir_), 1);  // committed before the response
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0], "alice: scenario 2 labelled Dress");

  // A second annotator, a rejection, and a changed mind.
  ASSERT_EQ(post({{"scenario", 2}, {"annotator", "bob"}, {"reject", "unrealistic"}})->status, 200);
  auto tie = json::parse(post({{"scenario", 2}, {"annotator", "carol"}, {"label", 6}})->body);
  EXPECT_EQ(tie["resolution"]["status"], "tie");
  auto changed = json::parse(post({{"scenario", 2}, {"annotator", "carol"}, {"label", 3}})->body);
  EXPECT_EQ(changed["resolution"]["status"], "labelled");
  EXPECT_EQ(changed["resolution"]["voters"], 3);

  json s = state();
  const json& votes = s["scenarios"][1]["votes"];
  ASSERT_EQ(votes.size(), 3u);
  EXPECT_EQ(votes[0]["annotator"], "alice");
  EXPECT_EQ(votes[1]["annotator"], "bob");
  EXPECT_EQ(votes[1]["reject"], "unrealistic");
  EXPECT_EQ(votes[2]["annotator"], "carol");
  EXPECT_EQ(votes[2]["label"], 3);
  EXPECT_EQ(s["scenarios"][1]["resolution"]["label"], 3);
  EXPECT_EQ(s["scenarios"][1]["resolution"]["disputed"], true);
  EXPECT_EQ(s["progress"]["labelled"], 1);
  EXPECT_EQ(stored_annotations(dir_), 4);
}

TEST_F(Server, AReferrerFromThePageIsEnoughWithoutOrigin) {
  start();
  auto r = post({{"scenario", 1}, {"annotator", "alice"}, {"label", 1}},
                {{"Referer", origin() + "/?x=1"}, {"X-CSRF-Token", server_->csrf_token()}});
  EXPECT_EQ(r->status, 200) << r->body;
}

// ---- refusals ----

TEST_F(Server, RefusesCrossOriginWrites) {
  start();
  const json ok = {{"scenario", 1}, {"annotator", "mallory"}, {"label", 1}};
  const std::string csrf = server_->csrf_token();
  auto r = post(ok, {{"Origin", "http://evil.example"}, {"X-CSRF-Token", csrf}});
  EXPECT_EQ(r->status, 403);
  EXPECT_TRUE(test::contains(error_of(r), "cross-origin")) << r->body;
  EXPECT_EQ(post(ok, {{"Origin", "null"}, {"X-CSRF-Token", csrf}})->status, 403);
  EXPECT_EQ(post(ok, {{"Origin", "http://127.0.0.1:1"}, {"X-CSRF-Token", csrf}})->status, 403);
  EXPECT_EQ(
      post(ok, {{"Origin", "https://127.0.0.1:" + std::to_string(server_->port())}, {"X-CSRF-Token", csrf}})->status,
      403);
  EXPECT_EQ(post(ok, {{"Referer", "http://evil.example/page"}, {"X-CSRF-Token", csrf}})->status, 403);
  EXPECT_EQ(post(ok, {{"Referer", origin() + ".evil.example/"}, {"X-CSRF-Token", csrf}})->status, 403);
  r = post(ok, {{"X-CSRF-Token", csrf}});  // neither Origin nor Referer
  EXPECT_EQ(r->status, 403);
  EXPECT_TRUE(test::contains(error_of(r), "no Origin or Referer"));
  EXPECT_EQ(stored_annotations(dir_), 0);
}

TEST_F(Server, RefusesWritesWithoutTheCsrfToken) {
  start();
  const json ok = {{"scenario", 1}, {"annotator", "mallory"}, {"label", 1}};
  auto r = post(ok, {{"Origin", origin()}});
  EXPECT_EQ(r->status, 403);
  EXPECT_TRUE(test::contains(error_of(r), "CSRF")) << r->body;
  EXPECT_EQ(post(ok, {{"Origin", origin()}, {"X-CSRF-Token", "0123"}})->status, 403);
  std::string wrong = server_->csrf_token();
  wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
  EXPECT_EQ(post(ok, {{"Origin", origin()}, {"X-CSRF-Token", wrong}})->status, 403);
  // A form post (the only cross-site write a browser sends without asking) is refused too.
  auto form = client()->Post("/api/annotations", write_headers(), "scenario=1&annotator=m&label=1",
                             "application/x-www-form-urlencoded");
  EXPECT_EQ(form->status, 415);
  EXPECT_EQ(stored_annotations(dir_), 0);
}

TEST_F(Server, RefusesAForeignHostHeaderOnLoopback) {
  start();
  // A DNS-rebinding page reaches us under its own name: refused, reads included.
  auto r = client()->Get("/api/state", {{"Host", "evil.example:" + std::to_string(server_->port())}});
  EXPECT_EQ(r->status, 403);
  EXPECT_TRUE(test::contains(error_of(r), "unexpected Host")) << r->body;
  EXPECT_EQ(client()->Get("/", {{"Host", "localhost:" + std::to_string(server_->port())}})->status, 200);
  EXPECT_EQ(client()->Get("/", {{"Host", "[::1]:" + std::to_string(server_->port())}})->status, 200);
}

TEST_F(Server, ValidatesEveryField) {
  start();
  auto refused = [&](const json& body) {
    auto r = post(body);
    EXPECT_TRUE(r);
    EXPECT_EQ(r->status, 400) << body.dump() << " -> " << r->body;
    return error_of(r);
  };
  EXPECT_TRUE(test::contains(refused({{"scenario", 1}, {"annotator", "a"}, {"label", 10}}), "label 10 is not a class"));
  EXPECT_TRUE(test::contains(refused({{"scenario", 1}, {"annotator", "a"}, {"label", -1}}), "not a class"));
  EXPECT_TRUE(
      test::contains(refused({{"scenario", 1}, {"annotator", "a"}, {"label", "3"}}), "\"label\" must be an integer"));
  EXPECT_TRUE(
      test::contains(refused({{"scenario", 1}, {"annotator", "a"}, {"label", 2.5}}), "\"label\" must be an integer"));
  EXPECT_TRUE(test::contains(refused({{"scenario", 99}, {"annotator", "a"}, {"label", 1}}), "unknown scenario 99"));
  EXPECT_TRUE(test::contains(refused({{"scenario", "1"}, {"annotator", "a"}, {"label", 1}}), "\"scenario\" must be"));
  EXPECT_TRUE(test::contains(refused({{"annotator", "a"}, {"label", 1}}), "\"scenario\" must be"));
  EXPECT_TRUE(test::contains(refused({{"scenario", 1}, {"label", 1}}), "\"annotator\" must be"));
  EXPECT_TRUE(test::contains(refused({{"scenario", 1}, {"annotator", ""}, {"label", 1}}), "name is empty"));
  EXPECT_TRUE(
      test::contains(refused({{"scenario", 1}, {"annotator", std::string(65, 'a')}, {"label", 1}}), "at most 64"));
  EXPECT_TRUE(test::contains(
      refused({{"scenario", 1}, {"annotator", "a"}, {"label", 1}, {"note", std::string(1001, 'n')}}), "at most 1000"));
  EXPECT_TRUE(
      test::contains(refused({{"scenario", 1}, {"annotator", "a"}, {"label", 1}, {"note", 5}}), "\"note\" must be"));
  EXPECT_TRUE(test::contains(refused({{"scenario", 1}, {"annotator", "a"}}), "needs a label or a rejection"));
  EXPECT_TRUE(test::contains(refused({{"scenario", 1}, {"annotator", "a"}, {"label", 1}, {"reject", "ambiguous"}}),
                             "not both"));
  EXPECT_TRUE(
      test::contains(refused({{"scenario", 1}, {"annotator", "a"}, {"reject", "boring"}}), "is not \"unrealistic\""));
  EXPECT_TRUE(test::contains(refused({{"scenario", 1}, {"annotator", "a"}, {"reject", true}}), "\"reject\" must be"));
  EXPECT_TRUE(test::contains(refused(json::array({1, 2})), "not a JSON object"));
  auto r = client()->Post("/api/annotations", write_headers(), "{\"scenario\": 1,", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(stored_annotations(dir_), 0);
}

TEST_F(Server, RefusesOversizedBodies) {
  ServerOptions options;
  options.max_body_bytes = 4096;
  start(options);
  json big = {{"scenario", 1}, {"annotator", "a"}, {"label", 1}, {"note", std::string(5000, 'n')}};
  auto r = post(big);
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 413);
  // Far over the limit as well (the server does not buffer it).
  std::string huge(2 << 20, ' ');
  r = client()->Post("/api/annotations", write_headers(), huge, "application/json");
  if (r) EXPECT_EQ(r->status, 413);
  EXPECT_EQ(stored_annotations(dir_), 0);
  EXPECT_EQ(post({{"scenario", 1}, {"annotator", "a"}, {"label", 1}})->status, 200);  // still serving
}

TEST_F(Server, ServesThumbnailsAndNothingElseFromDisk) {
  // Files outside the thumbnail directory that an attacker would like to read.
  test::write_file(tmp_.path() / "secret.png", std::string_view("SECRET-OUTSIDE"));
  test::write_file(dir_ / "inside-workspace.png", std::string_view("SECRET-WORKSPACE"));
  test::write_file(dir_ / "scenarios" / "notes.txt", std::string_view("SECRET-TEXT"));
  fs::create_directories(tmp_.path() / "outside-dir");
  test::write_file(tmp_.path() / "outside-dir" / "x.png", std::string_view("SECRET-DIR"));
  fs::create_symlink(tmp_.path() / "secret.png", dir_ / "scenarios" / "link.png");
  fs::create_directory_symlink(tmp_.path() / "outside-dir", dir_ / "scenarios" / "linked-dir");
  fs::create_symlink(dir_ / "scenarios" / "run-1" / "s1-sample-0.png", dir_ / "scenarios" / "inner-link.png");
  start();
  auto get = [&](const std::string& path) {
    auto r = client()->Get(path);
    EXPECT_TRUE(r) << path;
    EXPECT_FALSE(test::contains(r->body, "SECRET")) << path;
    return r->status;
  };
  EXPECT_EQ(get("/thumbs/run-1/s1-sample-0.png"), 200);
  EXPECT_EQ(get("/thumbs/inner-link.png"), 200);  // a symlink that stays inside is fine
  EXPECT_EQ(get("/thumbs/run-1/missing.png"), 404);
  // Traversal, plain and %-encoded (the server decodes before checking).
  EXPECT_EQ(get("/thumbs/../inside-workspace.png"), 403);
  EXPECT_EQ(get("/thumbs/../../secret.png"), 403);
  EXPECT_EQ(get("/thumbs/run-1/../../inside-workspace.png"), 403);
  EXPECT_EQ(get("/thumbs/%2e%2e/inside-workspace.png"), 403);
  EXPECT_EQ(get("/thumbs/%2E%2E/%2e%2e/secret.png"), 403);
  EXPECT_EQ(get("/thumbs/%2e%2e%2finside-workspace.png"), 403);
  EXPECT_EQ(get("/thumbs/run-1/..%2f..%2finside-workspace.png"), 403);
  EXPECT_EQ(get("/thumbs/.%2e/inside-workspace.png"), 403);
  EXPECT_EQ(get("/thumbs/%252e%252e/inside-workspace.png"), 404);  // decoded once: a literal name
  EXPECT_EQ(get("/thumbs/..\\inside-workspace.png"), 403);
  EXPECT_EQ(get("/thumbs/run-1/%00.png"), 403);
  // Absolute paths.
  EXPECT_EQ(get("/thumbs//etc/passwd"), 403);
  EXPECT_EQ(get("/thumbs/%2fetc%2fpasswd"), 403);
  EXPECT_EQ(get("/thumbs/" + (tmp_.path() / "secret.png").string()), 403);
  EXPECT_EQ(get("/thumbs/%2F" + (tmp_.path() / "secret.png").relative_path().string()), 403);
  // Symlinks pointing outside, to a file or through a directory.
  EXPECT_EQ(get("/thumbs/link.png"), 403);
  EXPECT_EQ(get("/thumbs/linked-dir/x.png"), 403);
  // Only .png files, even inside.
  EXPECT_EQ(get("/thumbs/notes.txt"), 403);
  EXPECT_EQ(get("/thumbs/run-1"), 403);
  EXPECT_EQ(get("/thumbs/"), 403);
  // Nothing else from disk under other prefixes either.
  EXPECT_EQ(get("/defuse.db"), 404);
  EXPECT_EQ(get("/scenarios/run-1/s1-sample-0.png"), 404);
  EXPECT_EQ(get("/../secret.png"), 404);
}

// ---- the access token ----

TEST_F(Server, WithATokenEveryRequestNeedsIt) {
  ServerOptions options;
  options.token = "secret-token-123";
  start(options);
  EXPECT_EQ(server_->url(), origin() + "/?token=secret-token-123");
  for (const char* path : {"/", "/assets/app.js", "/api/state", "/thumbs/run-1/s1-sample-0.png", "/nope"}) {
    auto r = client()->Get(path);
    EXPECT_EQ(r->status, 403) << path;
    EXPECT_TRUE(test::contains(error_of(r), "access token")) << path;
    EXPECT_EQ(client()->Get(std::string(path) + "?token=wrong-token-123")->status, 403) << path;
    EXPECT_EQ(client()->Get(path, {{"X-Defuse-Token", "secret-token-12"}})->status, 403) << path;
  }
  auto page = client()->Get("/?token=secret-token-123");
  EXPECT_EQ(page->status, 200);
  // The page leaves a cookie so that its own requests (scripts, images) carry the token.
  std::string cookie = page->get_header_value("Set-Cookie");
  EXPECT_TRUE(test::contains(cookie, "defuse_token_" + std::to_string(server_->port()) + "=secret-token-123"));
  EXPECT_TRUE(test::contains(cookie, "HttpOnly"));
  EXPECT_TRUE(test::contains(cookie, "SameSite=Strict"));
  std::string pair = cookie.substr(0, cookie.find(';'));
  EXPECT_EQ(client()->Get("/assets/app.js", {{"Cookie", "other=1; " + pair}})->status, 200);
  EXPECT_EQ(client()->Get("/thumbs/run-1/s1-sample-0.png?token=secret-token-123")->status, 200);
  EXPECT_EQ(client()->Get("/api/state", {{"X-Defuse-Token", "secret-token-123"}})->status, 200);
  // A foreign Host is fine with the token (it is how a remote browser reaches us)...
  EXPECT_EQ(client()->Get("/api/state", {{"X-Defuse-Token", "secret-token-123"}, {"Host", "lab-box:8765"}})->status,
            200);
  // ...and writes still need the origin check and the CSRF token on top of it.
  json ok = {{"scenario", 1}, {"annotator", "a"}, {"label", 1}};
  EXPECT_EQ(post(ok, {{"X-Defuse-Token", "secret-token-123"}, {"Origin", origin()}})->status, 403);
  EXPECT_EQ(post(ok, {{"Origin", origin()}, {"X-CSRF-Token", server_->csrf_token()}})->status, 403);
  auto headers = write_headers();
  headers.emplace("X-Defuse-Token", "secret-token-123");
  EXPECT_EQ(post(ok, headers)->status, 200);
  EXPECT_EQ(stored_annotations(dir_), 1);
}

TEST_F(Server, AnyOtherAddressThanLoopbackRequiresAToken) {
  ServerOptions options;
  options.host = "0.0.0.0";
  start(options);
  ASSERT_EQ(server_->token().size(), 48u);
  EXPECT_TRUE(test::contains(server_->url(), ":" + std::to_string(server_->port()) + "/?token=" + server_->token()));
  EXPECT_EQ(client()->Get("/api/state")->status, 403);
  EXPECT_EQ(client()->Get("/api/state?token=" + server_->token())->status, 200);
}

TEST(ServerOptions, LoopbackHostsAndValidation) {
  for (const char* host : {"127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "::1", "[::1]"})
    EXPECT_TRUE(is_loopback_host(host)) << host;
  for (const char* host :
       {"0.0.0.0", "10.0.0.1", "127.0.0", "127.0.0.1.evil.example", "127.0.0.256", "localhost.evil", "::", ""})
    EXPECT_FALSE(is_loopback_host(host)) << host;

  test::TempDir tmp;
  test::make_scenario_workspace(tmp.path(), {1, 1, 0});
  auto config_error = [&](auto change) {
    ServerOptions options;
    change(options);
    return test::error_message<ConfigError>([&] { AnnotationServer server(tmp.path(), options); });
  };
  EXPECT_TRUE(test::contains(config_error([](ServerOptions& o) { o.port = -1; }), "not a TCP port"));
  EXPECT_TRUE(test::contains(config_error([](ServerOptions& o) { o.port = 70000; }), "not a TCP port"));
  EXPECT_TRUE(test::contains(config_error([](ServerOptions& o) { o.token = "short"; }), "--token"));
  EXPECT_TRUE(test::contains(config_error([](ServerOptions& o) { o.token = "has spaces in it"; }), "--token"));
  EXPECT_TRUE(test::contains(config_error([](ServerOptions& o) { o.host = ""; }), "--host"));
  EXPECT_TRUE(test::contains(config_error([](ServerOptions& o) { o.max_body_bytes = 10; }), "at least 1024"));

  // No distill stage: a StateError, before anything listens.
  test::TempDir empty;
  EXPECT_THROW(AnnotationServer(empty.path(), {}), StateError);
}

TEST_F(Server, APortInUseIsAnIoError) {
  start();
  ServerOptions options;
  options.port = server_->port();
  AnnotationServer second(dir_, options);
  std::string message = test::error_message<IoError>([&] { second.start(); });
  EXPECT_TRUE(test::contains(message, "--port 0")) << message;
}

// ---- concurrency and completion ----

TEST_F(Server, EightClientsPostingAThousandAnnotationsEachAreAllStored) {
  start();
  constexpr int kClients = 8, kEach = 1000;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  const auto headers = write_headers();
  const auto started = std::chrono::steady_clock::now();
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      auto cli = client();  // one keep-alive connection per client
      for (int i = 0; i < kEach; ++i) {
        json body = {
            {"scenario", 1 + (i + c) % 4}, {"annotator", "client-" + std::to_string(c)}, {"note", std::to_string(i)}};
        if (i % 10 == 9)
          body["reject"] = "ambiguous";
        else
          body["label"] = (i * 7 + c) % 10;
        auto r = cli->Post("/api/annotations", headers, body.dump(), "application/json");
        if (!r || r->status != 200) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cerr << "[          ] " << kClients * kEach << " annotations in " << seconds << " s\n";
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(stored_annotations(dir_), kClients * kEach);
  // Each client's latest vote per scenario is the last one it posted there.
  json s = state();
  for (const auto& scenario : s["scenarios"]) {
    ASSERT_EQ(scenario["votes"].size(), static_cast<size_t>(kClients));
    for (const auto& v : scenario["votes"]) {
      int c = std::stoi(v["annotator"].get<std::string>().substr(7));
      int last = -1;
      for (int i = 0; i < kEach; ++i)
        if (1 + (i + c) % 4 == scenario["id"].get<int>()) last = i;
      EXPECT_EQ(v["note"], std::to_string(last));
    }
  }
}

TEST_F(Server, WaitsUntilEveryScenarioIsDecided) {
  start();
  std::atomic<bool> done{false};
  bool complete = false;
  std::thread waiter([&] {
    complete = server_->wait_until_complete();
    done = true;
  });
  for (int id = 1; id <= 3; ++id) ASSERT_EQ(post({{"scenario", id}, {"annotator", "a"}, {"label", id}})->status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(done.load());  // scenario 4 is still open
  ASSERT_EQ(post({{"scenario", 4}, {"annotator", "a"}, {"reject", "unrealistic"}})->status, 200);
  waiter.join();
  EXPECT_TRUE(complete);
  EXPECT_TRUE(server_->wait_until_complete());  // complete: returns at once
  server_->stop();
  EXPECT_FALSE(server_->running());
}

TEST_F(Server, ServeUntilCompleteStopsWhenAskedOrAtOnceWhenDone) {
  std::string url;
  int polls = 0;
  ServeResult r = serve_until_complete(
      dir_, {}, [&](const std::string& u) { url = u; }, [&] { return ++polls > 3; });
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(r.url, url);
  EXPECT_TRUE(test::contains(url, "http://127.0.0.1:"));
  EXPECT_EQ(r.progress.unlabelled, 4);
  {
    Workspace ws(dir_);
    auto_label(ws.db(), load_scenarios(ws));
  }
  bool called = false;
  r = serve_until_complete(dir_, {}, [&](const std::string&) { called = true; });
  EXPECT_TRUE(r.complete);
  EXPECT_FALSE(called);
  EXPECT_EQ(r.url, "");
  EXPECT_EQ(r.progress.labelled, 4);
}

}  // namespace
}  // namespace defuse
