// Unit tests for auth/http/body: JSON, urlencoded and multipart bodies, and their limits.
#include "auth/http/body.h"

#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

using namespace latch;
using namespace latch::http;

namespace {

httplib::Request request(const std::string &content_type, const std::string &body) {
  httplib::Request req;
  req.method = "POST";
  req.path = "/test";
  req.body = body;
  if (!content_type.empty()) req.set_header("Content-Type", content_type);
  return req;
}

Result<json> parse(const std::string &content_type, const std::string &body,
                   BodyKind kind = BodyKind::json_only) {
  return parse_body(request(content_type, body), kind);
}

ErrorCode parse_error(const std::string &content_type, const std::string &body,
                      BodyKind kind = BodyKind::json_only) {
  auto r = parse(content_type, body, kind);
  REQUIRE_FALSE(r.ok());
  return r.error().code;
}

std::string nested_arrays(int depth) {
  return "{\"a\":" + std::string(static_cast<size_t>(depth), '[') +
         std::string(static_cast<size_t>(depth), ']') + "}";
}

} // namespace

TEST_CASE("a JSON object body is parsed with its values") {
  auto r = parse("application/json", R"({"username":"ann","age":7,"tags":["a"],"x":null})");
  REQUIRE(r.ok());
  CHECK(r->is_object());
  CHECK(r->at("username") == "ann");
  CHECK(r->at("age") == 7);
  CHECK(r->at("tags") == json::array({"a"}));
  CHECK(r->at("x").is_null());
  CHECK(r->size() == 4);
}

TEST_CASE("the JSON media type is matched without regard to case, parameters or a +json suffix") {
  for (const char *type : {"application/json; charset=utf-8", "Application/JSON",
                           "application/json ;charset=UTF-8", "application/vnd.api+json"}) {
    CAPTURE(type);
    auto r = parse(type, R"({"a":"b"})");
    REQUIRE(r.ok());
    CHECK(r->at("a") == "b");
  }
}

TEST_CASE("a body without a Content-Type is read as JSON") {
  auto r = parse("", R"({"a":1})");
  REQUIRE(r.ok());
  CHECK(r->at("a") == 1);
  CHECK(parse_error("", "a=1") == ErrorCode::bad_body);
}

TEST_CASE("an empty or blank body is an empty object") {
  for (const char *body : {"", "   ", "\r\n\t "}) {
    CAPTURE(body);
    auto r = parse("application/json", body);
    REQUIRE(r.ok());
    CHECK(*r == json::object());
    auto untyped = parse("", body);
    REQUIRE(untyped.ok());
    CHECK(*untyped == json::object());
  }
}

TEST_CASE("malformed JSON is bad_body") {
  for (const char *body : {"{", R"({"a":)", R"({'a':1})", R"({"a":1,})", R"({"a":1} trailing)",
                           R"({"a":1}{"b":2})", R"({a:1})", "\xef\xbb\xbf{}x", "{\"a\":01}"}) {
    CAPTURE(body);
    CHECK(parse_error("application/json", body) == ErrorCode::bad_body);
  }
}

TEST_CASE("a JSON body that is not an object is bad_body") {
  for (const char *body : {"[]", R"(["a"])", R"("string")", "null", "42", "true"}) {
    CAPTURE(body);
    auto r = parse("application/json", body);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::bad_body);
    CHECK(r.error().detail == "JSON body must be an object");
  }
}

TEST_CASE("nesting up to kMaxJsonDepth is accepted and one level more is bad_body") {
  // The object itself is one level; the arrays make up the rest.
  auto ok = parse("application/json", nested_arrays(kMaxJsonDepth - 1));
  CHECK(ok.ok());
  auto deep = parse("application/json", nested_arrays(kMaxJsonDepth));
  REQUIRE_FALSE(deep.ok());
  CHECK(deep.error().code == ErrorCode::bad_body);
  CHECK(deep.error().detail == "nesting too deep");
}

TEST_CASE("brackets inside strings do not count as nesting") {
  std::string brackets(200, '[');
  auto r = parse("application/json", "{\"a\":\"" + brackets + "\",\"b\":\"\\\"{{{{\"}");
  REQUIRE(r.ok());
  CHECK(r->at("a") == brackets);
  CHECK(r->at("b") == "\"{{{{");
}

TEST_CASE("100000 levels of nesting are refused quickly") {
  const std::string arrays(100000, '[');
  const std::string objects = [] {
    std::string s;
    for (int i = 0; i < 100000; ++i)
      s += "{\"a\":";
    return s;
  }();
  auto start = std::chrono::steady_clock::now();
  CHECK(parse_error("application/json", arrays) == ErrorCode::bad_body);
  CHECK(parse_error("application/json", objects) == ErrorCode::bad_body);
  CHECK(parse_error("application/json", "{\"a\":" + arrays + std::string(100000, ']') + "}") ==
        ErrorCode::bad_body);
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(elapsed < std::chrono::milliseconds(500));
}

TEST_CASE("invalid UTF-8 inside JSON is bad_body, valid UTF-8 is kept") {
  for (const char *body : {"{\"a\":\"\xff\"}", "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xed\xa0\x80\"}",
                           "{\"a\":\"\xc3\"}", "{\"\xfe\":1}", R"({"a":"\ud800"})"}) {
    CAPTURE(body);
    CHECK(parse_error("application/json", body) == ErrorCode::bad_body);
  }
  auto r = parse("application/json", "{\"name\":\"Ren\xc3\xa9\",\"e\":\"\\u00e9\"}");
  REQUIRE(r.ok());
  CHECK(r->at("name") == "Ren\xc3\xa9");
  CHECK(r->at("e") == "\xc3\xa9");
}

TEST_CASE(
    "an urlencoded form is decoded, plus and %20 both as spaces, when the route allows forms") {
  for (BodyKind kind : {BodyKind::json_form, BodyKind::json_form_multi}) {
    auto r = parse("application/x-www-form-urlencoded",
                   "username=John+Doe&city=New%20York&email=a%40b.example&empty=", kind);
    REQUIRE(r.ok());
    CHECK(r->at("username") == "John Doe");
    CHECK(r->at("city") == "New York");
    CHECK(r->at("email") == "a@b.example");
    CHECK(r->at("empty") == "");
    CHECK(r->size() == 4);
  }
  auto charset =
      parse("application/x-www-form-urlencoded; charset=utf-8", "a=%C3%A9", BodyKind::json_form);
  REQUIRE(charset.ok());
  CHECK(charset->at("a") == "\xc3\xa9");
}

TEST_CASE("a repeated form field keeps its last value, as a repeated JSON key does") {
  auto r = parse("application/x-www-form-urlencoded", "a=1&a=2&b=3", BodyKind::json_form);
  REQUIRE(r.ok());
  CHECK(r->at("a") == "2");
  auto j = parse("application/json", R"({"a":"1","a":"2"})", BodyKind::json_form);
  REQUIRE(j.ok());
  CHECK(j->at("a") == "2");
  CHECK(r->at("b") == "3");
}

TEST_CASE("a form field that decodes to invalid UTF-8 is bad_body") {
  CHECK(parse_error("application/x-www-form-urlencoded", "a=%FF", BodyKind::json_form) ==
        ErrorCode::bad_body);
  CHECK(parse_error("application/x-www-form-urlencoded", "%C0%AF=1", BodyKind::json_form) ==
        ErrorCode::bad_body);
}

TEST_CASE("a form on a JSON-only route is unsupported_media_type") {
  auto r = parse("application/x-www-form-urlencoded", "a=1", BodyKind::json_only);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::unsupported_media_type);
  CHECK(r.error().detail == "application/x-www-form-urlencoded");
}

TEST_CASE("multipart fields are read only where the route allows multipart, files are skipped") {
  httplib::Request req = request("multipart/form-data; boundary=xyz", "");
  req.files.emplace("username", httplib::MultipartFormData{"username", "ann", "", ""});
  req.files.emplace("avatar", httplib::MultipartFormData{"avatar", "PNG...", "a.png", "image/png"});
  auto r = parse_body(req, BodyKind::json_form_multi);
  REQUIRE(r.ok());
  CHECK(r->at("username") == "ann");
  CHECK_FALSE(r->contains("avatar"));
  auto refused = parse_body(req, BodyKind::json_form);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == ErrorCode::unsupported_media_type);

  httplib::Request bad = request("multipart/form-data; boundary=xyz", "");
  bad.files.emplace("name", httplib::MultipartFormData{"name", "\xff", "", ""});
  CHECK(parse_body(bad, BodyKind::json_form_multi).error().code == ErrorCode::bad_body);
}

TEST_CASE("text/plain and other media types are unsupported_media_type on every route") {
  for (BodyKind kind : {BodyKind::json_only, BodyKind::json_form, BodyKind::json_form_multi}) {
    auto r = parse("text/plain", R"({"a":1})", kind);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::unsupported_media_type);
    CHECK(r.error().detail == "text/plain");
    CHECK(parse_error("application/xml", "<a/>", kind) == ErrorCode::unsupported_media_type);
  }
}

TEST_CASE("a route that takes no body ignores whatever is sent") {
  auto r = parse("text/plain", "{{{ not json", BodyKind::none);
  REQUIRE(r.ok());
  CHECK(*r == json::object());
}

namespace {

// What nlohmann's parser makes of text, as parse_body would take it; nullopt if it refuses.
std::optional<json> nlohmann_reading(const std::string &text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

} // namespace

TEST_CASE("the flat-object fast path reads the usual bodies, as nlohmann does") {
  const std::vector<std::string> usual = {
      R"({"token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"})",
      R"({"username":"alice","password":"correct horse battery"})",
      " {\n\t\"email\" : \"a@b.c\" ,\r\n \"password\":\"p\"}\n ",
      R"({})",
      R"({"":""})",
      R"({"a":"1","a":"2"})", // the last of a repeated key wins in both
      R"({"refresh":"x y ~!@#$%^&*()_+=-`{}[]|;:',.<>/?"})",
  };
  for (const std::string &text : usual) {
    INFO(text);
    auto fast = parse_flat_string_object(text);
    REQUIRE(fast.has_value());
    CHECK(*fast == nlohmann_reading(text));
  }
}

TEST_CASE("the flat-object fast path leaves everything else to nlohmann") {
  const std::vector<std::string> others = {
      R"({"a":1})",
      R"({"a":["b"]})",
      R"({"a":{"b":"c"}})",
      R"({"a":"\u0041"})",
      R"({"a":"b\"c"})",
      R"({"a":null})",
      "{\"a\":\"\xc3\xa9\"}",
      "{\"a\":\"\x7f\"}",
      "{\"a\":\"\t\"}",
      R"({"a":"b",})",
      R"({"a" "b"})",
      R"({"a":"b"} x)",
      R"(["a"])",
      R"("a")",
      "",
      "\xef\xbb\xbf{}",
      R"({"a":"b")",
      R"({"a":"b"}})",
      R"({,})",
      "{\"a\":\"b\"\x0b}",
      R"({"a":"b" , , "c":"d"})",
  };
  for (const std::string &text : others) {
    INFO(text);
    CHECK_FALSE(parse_flat_string_object(text).has_value());
  }
}

TEST_CASE("whatever the fast path reads, nlohmann reads the same, on random bodies") {
  // Bodies strung together from pieces of JSON's grammar and bytes at the fast path's limits;
  // every one it accepts must be one nlohmann accepts, as the same object.
  const std::vector<std::string> pieces = {
      "{",        "}",    "\"",   "\"a\"",        "\"b c\"", "\"\"", ":", ",",    " ",
      "\t",       "\n",   "\r",   "\\",           "1",       "[",    "]", "null", "\"\\u0041\"",
      "\xc3\xa9", "\x7f", "\x1f", "\xef\xbb\xbf", "x"};
  std::uint64_t state = 88172645463325252ULL; // xorshift: the same bodies on every run
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  int read_fast = 0;
  for (int i = 0; i < 300000; ++i) {
    std::string text = i % 2 ? "{" : "";
    const std::size_t count = next() % 12;
    for (std::size_t k = 0; k < count; ++k)
      text += pieces[next() % pieces.size()];
    if (i % 3 == 0) text += "}";
    auto fast = parse_flat_string_object(text);
    if (!fast) continue;
    ++read_fast;
    INFO(text);
    REQUIRE(*fast == nlohmann_reading(text));
  }
  MESSAGE(read_fast << " random bodies read by the fast path");
  CHECK(read_fast > 1000);
}
