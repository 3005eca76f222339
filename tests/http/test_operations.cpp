// Operations: health and readiness, request ids and the access log, CORS, metrics, TLS,
// graceful shutdown and the OpenAPI description generated from the route table.
#include "support/latch_process.h"

#include "auth/http/routes.h"

#include <doctest/doctest.h>

#include <regex>
#include <sqlite3.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <sstream>
#include <thread>

using namespace latch::test;

namespace {

std::vector<std::string> lines_of(const std::string &text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

// The access-log lines (the startup line on stdout is not one).
std::vector<std::string> access_lines(const LatchProcess &latch) {
  std::vector<std::string> out;
  for (auto &l : lines_of(latch.output()))
    if (l.rfind("latch: ", 0) != 0) out.push_back(l);
  return out;
}

Reply register_user(const LatchProcess &latch, const std::string &name) {
  return latch.post("/auth/register", {{"username", name}, {"password", "password123"}});
}

} // namespace

TEST_CASE("healthz answers while the process lives and readyz while the database answers") {
  if (skip_on_postgres("another process holds the SQLite file's write lock (test_postgres: "
                       "readyz while PostgreSQL is stopped)"))
    return;
  LatchProcess latch;
  Reply health = latch.get("/healthz");
  CHECK(health.status == 200);
  CHECK(health.body == json{{"status", "ok"}});
  CHECK(latch.get("/readyz").status == 200);
  // Another process holds the write lock (a backup tool, a long admin command): writes cannot
  // commit, so not ready, yet alive; said at once, not after the 5 s a write would wait.
  sqlite3 *other = nullptr;
  REQUIRE(sqlite3_open(latch.db_path().c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  const auto asked = std::chrono::steady_clock::now();
  Reply down = latch.get("/readyz");
  CHECK(std::chrono::steady_clock::now() - asked < std::chrono::seconds(2));
  CHECK(down.status == 503);
  CHECK(down.body["status"] == "database unavailable");
  CHECK(latch.get("/healthz").status == 200);
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  CHECK(latch.get("/readyz").status == 200);
}

TEST_CASE("every response carries an X-Request-Id, the client's own when it is sane") {
  LatchProcess latch;
  Reply fresh = latch.get("/healthz");
  CHECK(fresh.header("X-Request-Id").size() >= 16);
  CHECK(latch.get("/healthz").header("X-Request-Id") != fresh.header("X-Request-Id"));
  Reply given = latch.get("/auth/getuser", "", {{"X-Request-Id", "trace-42.a_b:c"}});
  CHECK(given.status == 401);
  CHECK(given.header("X-Request-Id") == "trace-42.a_b:c");
  Reply odd = latch.get("/healthz", "", {{"X-Request-Id", "has spaces <and> {json}"}});
  CHECK(odd.header("X-Request-Id") != "has spaces <and> {json}");
  CHECK(!odd.header("X-Request-Id").empty());
  // Refused before routing (unknown path) still gets one.
  CHECK(!latch.get("/nowhere").header("X-Request-Id").empty());
}

TEST_CASE("the access log has one text line a request, without query strings") {
  LatchProcess latch;
  Reply r = latch.get("/api/v1/verify?token=SECRET-IN-QUERY", "", {{"X-Request-Id", "req-one"}});
  CHECK(r.status >= 400);
  register_user(latch, unique("logged"));
  std::vector<std::string> lines;
  for (int i = 0; i < 50 && lines.size() < 2; ++i) {
    lines = access_lines(latch);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].find(" GET /api/v1/verify " + std::to_string(r.status) + " ") !=
        std::string::npos);
  CHECK(lines[0].find("ms 127.0.0.1 id=req-one") != std::string::npos);
  CHECK(lines[1].find(" POST /auth/register 201 ") != std::string::npos);
  CHECK(latch.output().find("SECRET-IN-QUERY") == std::string::npos);
  CHECK(latch.log().find("SECRET-IN-QUERY") == std::string::npos);
}

TEST_CASE("--log-format json writes JSON lines and off writes none") {
  {
    LatchProcess latch({{"--log-format", "json"}, {}});
    latch.get("/healthz", "", {{"X-Request-Id", "json-1"}});
    std::vector<std::string> lines;
    for (int i = 0; i < 50 && lines.empty(); ++i) {
      lines = access_lines(latch);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    REQUIRE(lines.size() == 1);
    json line = json::parse(lines[0]);
    CHECK(line["method"] == "GET");
    CHECK(line["route"] == "/healthz");
    CHECK(line["status"] == 200);
    CHECK(line["ms"].is_number());
    CHECK(line["client"] == "127.0.0.1");
    CHECK(line["request_id"] == "json-1");
    CHECK(line["time"].get<std::string>().back() == 'Z');
  }
  LatchProcess quiet({{"--log-format", "off"}, {}});
  quiet.get("/healthz");
  CHECK(access_lines(quiet).empty());
  CHECK(run_latch({"serve", "--log-format", "xml"}).status == 2);
}

TEST_CASE("CORS: allowed origins get preflights answered and their headers; others get none") {
  LatchProcess latch({{"--cors-origin", "https://app.example,http://localhost:5173"}, {}});
  httplib::Headers pre = {{"Origin", "http://localhost:5173"},
                          {"Access-Control-Request-Method", "POST"},
                          {"Access-Control-Request-Headers", "content-type, authorization"}};
  for (const auto &route : latch::http::route_table()) {
    Reply res = latch.options(route.path, pre);
    INFO(std::string(route.path)); // a const char * would be logged as a pointer
    CHECK(res.status == 204);
    // Reply::header fails the test on a header sent twice (tests/http/test_cors.cpp counts
    // every CORS header over a raw socket).
    CHECK(res.header("Access-Control-Allow-Origin") == "http://localhost:5173");
    CHECK(res.header("Access-Control-Allow-Credentials") == "true");
    CHECK(res.header("Access-Control-Allow-Methods").find(route.method) != std::string::npos);
    CHECK(res.header("Access-Control-Allow-Headers") == "content-type, authorization");
    CHECK(res.header("Vary") == "Origin");
  }
  // The actual request carries the headers too, errors included.
  Reply denied = latch.get("/auth/getuser", "", {{"Origin", "https://app.example"}});
  CHECK(denied.status == 401);
  CHECK(denied.header("Access-Control-Allow-Origin") == "https://app.example");
  CHECK(denied.header("Access-Control-Expose-Headers").find("X-Request-Id") != std::string::npos);
  CHECK(denied.header("Vary") == "Origin");
  // An origin not on the list gets nothing a browser would accept.
  Reply evil = latch.options("/auth/token", {{"Origin", "https://evil.example"},
                                             {"Access-Control-Request-Method", "POST"}});
  CHECK(evil.status != 0);
  CHECK(evil.header_count("Access-Control-Allow-Origin") == 0);
  CHECK(latch.get("/healthz", "", {{"Origin", "https://evil.example"}})
            .header_count("Access-Control-Allow-Origin") == 0);
}

TEST_CASE("CORS with * allows any origin without credentials; without the flag, no CORS") {
  LatchProcess any({{"--cors-origin", "*"}, {}});
  Reply r = any.get("/auth/getuser", "", {{"Origin", "http://anything.test:3000"}});
  CHECK(r.header("Access-Control-Allow-Origin") == "*");
  CHECK(r.header_count("Access-Control-Allow-Credentials") == 0);
  LatchProcess none;
  Reply plain = none.get("/auth/getuser", "", {{"Origin", "http://x.test"}});
  CHECK(plain.status == 401);
  CHECK(plain.header_count("Access-Control-Allow-Origin") == 0);
  CHECK(plain.header_count("Vary") == 0);
  CHECK(run_latch({"serve", "--cors-origin", "app.example"}).status == 2);
}

TEST_CASE("--metrics serves request, sign-in, hashing and database figures") {
  LatchProcess latch({{"--metrics"}, {}});
  std::string name = unique("metered");
  REQUIRE(register_user(latch, name).status == 201);
  CHECK(latch.post("/auth/token", {{"username", name}, {"password", "password123"}}).status == 200);
  CHECK(latch.post("/auth/token", {{"username", name}, {"password", "wrong-one"}}).status == 401);
  latch.get("/no/such/path/12345");
  // Counted just after each answer is written, so the last one may land a moment later.
  Reply m;
  for (int i = 0; i < 100; ++i) {
    m = latch.get("/metrics");
    if (m.text.find("route=\"other\"") != std::string::npos &&
        m.text.find("status=\"401\"} 1") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(m.status == 200);
  CHECK(m.header("Content-Type").rfind("text/plain", 0) == 0);
  const std::string &t = m.text;
  CHECK(
      t.find("latch_http_requests_total{route=\"/auth/token\",method=\"POST\",status=\"200\"} 1") !=
      std::string::npos);
  CHECK(
      t.find("latch_http_requests_total{route=\"/auth/token\",method=\"POST\",status=\"401\"} 1") !=
      std::string::npos);
  CHECK(
      t.find(
          "latch_http_requests_total{route=\"/auth/register\",method=\"POST\",status=\"201\"} 1") !=
      std::string::npos);
  // Unknown paths share one label, so clients cannot blow up the series count.
  CHECK(t.find("route=\"other\"") != std::string::npos);
  CHECK(t.find("/no/such/path") == std::string::npos);
  CHECK(t.find("latch_http_request_duration_seconds_bucket{route=\"/auth/token\",le=\"+Inf\"} 2") !=
        std::string::npos);
  CHECK(t.find("latch_sign_ins_total{result=\"succeeded\"} 1") != std::string::npos);
  // The sign-up and the sign-in each opened a session.
  CHECK(t.find("latch_active_sessions 2") != std::string::npos);
  CHECK(t.find("latch_sign_ins_total{result=\"failed\"} 1") != std::string::npos);
  CHECK(t.find("latch_password_hash_queue_depth 0") != std::string::npos);
  CHECK(t.find("latch_database_errors_total 0") != std::string::npos);
  // This test's own connection at least, and the workers kept running (--threads).
  CHECK(t.find("latch_http_connections_open ") != std::string::npos);
  CHECK(t.find("latch_http_connections_open 0") == std::string::npos);
  CHECK(t.find("latch_http_workers ") != std::string::npos);
  CHECK(t.find("latch_http_workers 0") == std::string::npos);

  LatchProcess off;
  CHECK(off.get("/metrics").status == 404);
}

TEST_CASE("--metrics-addr serves /metrics on its own listener only") {
  int port = unused_port();
  LatchProcess latch({{"--metrics-addr", "127.0.0.1:" + std::to_string(port)}, {}});
  CHECK(latch.get("/metrics").status == 404);
  httplib::Client c("127.0.0.1", port);
  auto res = c.Get("/metrics");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body.find("latch_sign_ins_total") != std::string::npos);
}

TEST_CASE("--metrics-addr with port 0 says which port it got") {
  LatchProcess latch({{"--metrics-addr", "127.0.0.1:0"}, {}});
  static const std::regex line(R"(metrics on http://127\.0\.0\.1:(\d+)/metrics)");
  std::smatch m;
  const std::string out = latch.output();
  REQUIRE(std::regex_search(out, m, line));
  const int port = std::stoi(m[1]);
  CHECK(port != 0);
  CHECK(port != latch.port());
  httplib::Client c("127.0.0.1", port);
  auto res = c.Get("/metrics");
  REQUIRE(res);
  CHECK(res->status == 200);
}

TEST_CASE("with --tls-cert and --tls-key the APIs are served over HTTPS") {
  TempDir dir;
  std::string cert = dir.file("cert.pem"), key = dir.file("key.pem");
  std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                    "-days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
                    key + " -out " + cert + " 2>/dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  LatchProcess latch({{"--tls-cert", cert, "--tls-key", key}, {}});
  httplib::SSLClient tls("127.0.0.1", latch.port());
  tls.set_ca_cert_path(cert.c_str());
  tls.enable_server_certificate_verification(true);
  std::string name = unique("tls");
  auto res =
      tls.Post("/auth/register", json{{"username", name}, {"password", "password123"}}.dump(),
               "application/json");
  REQUIRE(res);
  CHECK(res->status == 201);
  CHECK(json::parse(res->body).contains("access"));
  // Plain HTTP on the TLS port gets no answer.
  httplib::Client plain("127.0.0.1", latch.port());
  plain.set_read_timeout(3, 0);
  auto cleartext = plain.Get("/healthz");
  CHECK((!cleartext || cleartext->status != 200));

  auto bad = run_latch({"serve", "--addr", "127.0.0.1:0", "--db", dir.file("x.db"), "--tls-cert",
                        key, "--tls-key", cert});
  CHECK(bad.status == 2); // a bad setting, said before anything starts (test_cli.cpp has more)
  CHECK(bad.output.find("--tls-cert " + key + ": not a PEM certificate") != std::string::npos);
  CHECK(run_latch({"serve", "--tls-cert", cert}).status == 2);
}

TEST_CASE("SIGTERM lets the request in flight finish, then exits 0 with the WAL checkpointed") {
  // A slow hash keeps one sign-in in flight long enough to stop the server under it.
  LatchProcess latch(
      {{"--metrics", "--argon2-memory-kib", "65536", "--argon2-iterations", "12"}, {}});
  std::string name = unique("draining");
  REQUIRE(register_user(latch, name).status == 201);
  Reply in_flight;
  std::thread client([&] {
    in_flight = latch.post("/auth/token", {{"username", name}, {"password", "password123"}});
  });
  bool hashing = false;
  for (int i = 0; i < 500 && !hashing; ++i) {
    hashing =
        latch.get("/metrics").text.find("latch_password_hashes_running 1") != std::string::npos;
    if (!hashing) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(hashing);
  const int port = latch.port();
  int status = latch.stop(SIGTERM);
  client.join();
  CHECK(in_flight.status == 200);
  CHECK(in_flight.body.contains("access"));
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  // Closed cleanly: the WAL was checkpointed into the database and removed.
  std::error_code ec;
  auto wal = std::filesystem::file_size(latch.db_path() + "-wal", ec);
  CHECK((ec || wal == 0));
  // And nothing listens any more.
  httplib::Client after("127.0.0.1", port);
  after.set_connection_timeout(1, 0);
  CHECK(!after.Get("/healthz"));
}

TEST_CASE("/openapi.json describes exactly the route table, for the APIs that are on") {
  LatchProcess latch;
  Reply doc = latch.get("/openapi.json");
  REQUIRE(doc.status == 200);
  CHECK(doc.body["openapi"] == "3.1.0");
  const json &paths = doc.body["paths"];
  std::set<std::pair<std::string, std::string>> documented, table;
  for (auto p = paths.begin(); p != paths.end(); ++p)
    for (auto m = p.value().begin(); m != p.value().end(); ++m)
      documented.insert({p.key(), upper(m.key())});
  using latch::http::Access;
  using latch::http::BodyKind;
  for (const auto &r : latch::http::route_table()) {
    table.insert({r.path, r.method});
    const json &op = paths[r.path][lower(r.method)];
    INFO(r.method, " ", r.path);
    CHECK(op["tags"][0] == latch::api_name(r.api));
    CHECK(op["summary"] == r.summary);
    CHECK(op.contains("security") == (r.access != Access::open));
    CHECK(op.contains("requestBody") == (r.body != BodyKind::none));
    CHECK(r.doc != nullptr); // its fields and answers (auth/apis/docs.cpp)
    if (r.body != BodyKind::none) {
      // Its fields, for every media type the route takes, and no other media type.
      const json &content = op["requestBody"]["content"];
      std::set<std::string> types = {"application/json"};
      if (r.body != BodyKind::json_only) types.insert("application/x-www-form-urlencoded");
      if (r.body == BodyKind::json_form_multi) types.insert("multipart/form-data");
      std::set<std::string> declared_types;
      for (auto t = content.begin(); t != content.end(); ++t)
        declared_types.insert(t.key());
      CHECK(declared_types == types);
      for (const auto &type : types) {
        const json &schema = content[type]["schema"];
        CHECK(schema["type"] == "object");
        CHECK(schema["properties"].size() > 0);
        CHECK(schema["required"].size() > 0);
      }
    }
    // A success with its body, and each error the row and the pipeline give, in a schema.
    const json &responses = op["responses"];
    bool success = false;
    for (auto it = responses.begin(); it != responses.end(); ++it)
      success = success || it.key()[0] == '2';
    CHECK(success);
    std::set<std::string> errors = {
        "400", "413", "414", "415", "431", "500", r.api == latch::Api::picflux ? "404" : "405"};
    if (r.access != Access::open) errors.insert("401");
    if (r.throttled) errors.insert("429");
    if (r.hashes) errors.insert("503");
    for (const auto &status : errors) {
      CAPTURE(status);
      REQUIRE(responses.contains(status));
      CHECK(responses[status]["content"]["application/json"].contains("schema"));
    }
    for (const char *limited : {"429", "503"})
      if (responses.contains(limited))
        CHECK(responses[limited]["headers"]["Retry-After"]["required"] == true);
    CHECK(responses.contains("503") == r.hashes);
    CHECK(responses.contains("429") == r.throttled);
  }
  for (const char *extra : {"/healthz", "/readyz", "/.well-known/jwks.json", "/openapi.json",
                            "/reset-password", "/reset-password.js", "/reset-password.css"})
    table.insert({extra, "GET"});
  // The admin console's API (tests/http/test_console.cpp).
  for (const auto &[path, method] : std::vector<std::pair<std::string, std::string>>{
           {"/_/api/session", "POST"},
           {"/_/api/session", "GET"},
           {"/_/api/session", "DELETE"},
           {"/_/api/users", "GET"},
           {"/_/api/users/{id}", "GET"},
           {"/_/api/users/{id}", "DELETE"},
           {"/_/api/users/{id}/sessions/{sid}/revoke", "POST"},
           {"/_/api/users/{id}/sessions/revoke", "POST"},
           {"/_/api/users/{id}/verify-email", "POST"},
           {"/_/api/users/{id}/reset-mail", "POST"},
           {"/_/api/users/{id}/password", "POST"},
           {"/_/api/audit", "GET"},
           {"/_/api/keys", "GET"},
           {"/_/api/status", "GET"}})
    table.insert({path, method});
  CHECK(documented == table);

  // Every $ref names a schema of the document's components.
  std::function<void(const json &)> refs = [&](const json &node) {
    if (node.is_object() && node.contains("$ref")) {
      const std::string ref = node["$ref"];
      const std::string prefix = "#/components/schemas/";
      INFO(ref);
      REQUIRE(ref.rfind(prefix, 0) == 0);
      CHECK(doc.body["components"]["schemas"].contains(ref.substr(prefix.size())));
    }
    if (node.is_structured())
      for (const auto &child : node)
        refs(child);
  };
  refs(doc.body);

  LatchProcess v1_only({{"--apis", "v1"}, {}});
  Reply v1_doc = v1_only.get("/openapi.json");
  const json &v1_paths = v1_doc.body["paths"];
  CHECK(v1_paths.contains("/api/v1/login"));
  CHECK_FALSE(v1_paths.contains("/auth/token"));
  CHECK_FALSE(v1_paths.contains("/api/auth/signup"));
  // Only its shapes: v1's components and the neutral one.
  for (auto it = v1_doc.body["components"]["schemas"].begin();
       it != v1_doc.body["components"]["schemas"].end(); ++it)
    CHECK_MESSAGE(
        (it.key().rfind("V1", 0) == 0 || it.key() == "Error" || it.key() == "ConsoleError"),
        it.key());

  // flask forget-password answers the reset token itself only with --reset-token-in-response.
  auto forget_200 = [](const json &d) {
    return d["paths"]["/auth/forget-password"]["post"]["responses"]["200"]["content"]
            ["application/json"]["schema"]["$ref"];
  };
  CHECK(forget_200(doc.body) == "#/components/schemas/FlaskMessage");
  LatchProcess dev({{"--reset-token-in-response"}, {}});
  CHECK(forget_200(dev.get("/openapi.json").body) == "#/components/schemas/FlaskResetToken");
  // v1 register answers its confirmation token only with --verify-token-in-response.
  auto register_201 = [](const json &d) {
    return d["paths"]["/api/v1/register"]["post"]["responses"]["201"]["content"]["application/json"]
            ["schema"]["$ref"];
  };
  CHECK(register_201(doc.body) == "#/components/schemas/V1Message");
  LatchProcess verify_dev({{"--verify-token-in-response"}, {}});
  CHECK(register_201(verify_dev.get("/openapi.json").body) == "#/components/schemas/V1Registered");
}

TEST_CASE("a database other users may read is served with a warning for each file: its mode and "
          "the fix") {
  TempDir dir;
  const std::string db = dir.file("auth.db");
  {
    LatchProcess first({}, db); // made 0600: nothing to say
    CHECK(first.log().find("warning") == std::string::npos);
  }
  REQUIRE(::chmod(db.c_str(), 0644) == 0);
  LatchProcess latch({}, db);
  const std::string log = latch.log();
  // SQLite gives the -wal and -shm it makes the file's mode: each gets its line.
  for (const char *suffix : {"", "-wal", "-shm"}) {
    const std::string file = db + suffix;
    CAPTURE(file);
    CHECK(log.find("warning: " + file + " has mode 0644") != std::string::npos);
    CHECK(log.find("fix: chmod 600 " + file + "\n") != std::string::npos);
  }
  CHECK(latch.get("/healthz").status == 200); // a warning, not a refusal
}

TEST_CASE("two servers on one SQLite file: a token one just issued is accepted by the other") {
  LatchProcess a;
  LatchProcess b({}, a.db_path());
  const std::string name = unique("twoservers");
  REQUIRE(
      a.post("/api/v1/register?sendEmail=false",
             {{"email", name + "@example.com"}, {"username", name}, {"password", "password123"}})
          .status == 201);
  // The session is b's newest write; a has not followed the feed to it yet when asked at once,
  // and must not refuse a token for that (behind a load balancer the next request may land
  // anywhere). Several rounds, as the follower may happen to be quicker.
  for (int round = 0; round < 10; ++round) {
    Reply in =
        b.post("/api/v1/login", {{"email", name + "@example.com"}, {"password", "password123"}});
    REQUIRE(in.status == 200);
    const std::string access = in.body["access_token"].get<std::string>();
    CHECK(a.get("/api/v1/authorized/me", access).status == 200);
  }
}
