// libFuzzer: http::parse_body for every BodyKind on any bytes under eight Content-Types, and
// its flat-object fast path against nlohmann's parser.
#include "auth/http/body.h"
#include "auth/result.h"

#include "fuzz_request.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

using namespace latch;
using latch::http::BodyKind;
using latch::http::json;

namespace {

// Checks one outcome and returns the parsed object, or nullopt for a refused body.
std::optional<json> check(const Result<json> &result, BodyKind kind) {
  if (!result) {
    const ErrorCode code = result.error().code;
    if (code != ErrorCode::bad_body && code != ErrorCode::unsupported_media_type)
      fuzz::fail("parse_body failed with a code other than bad_body or unsupported_media_type",
                 std::to_string(static_cast<int>(code)) + " " + result.error().detail);
    if (kind == BodyKind::none) fuzz::fail("a route without a body refused one");
    return std::nullopt;
  }
  const json &j = result.value();
  if (!j.is_object()) fuzz::fail("parse_body answered something other than an object");
  if (kind == BodyKind::none && !j.empty()) fuzz::fail("a route without a body got fields");
  try {
    (void)j.dump(); // strict: throws on strings that are not UTF-8
  } catch (const json::exception &e) {
    fuzz::fail("parse_body let a string through that is not UTF-8", e.what());
  }
  return j;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  if (size == 0) return 0;
  httplib::Request req;
  req.method = "POST";
  fuzz::set_body(req, fuzz::kContentTypes[data[0] % fuzz::kContentTypes.size()],
                 std::string(reinterpret_cast<const char *>(data) + 1, size - 1));

  check(http::parse_body(req, BodyKind::none), BodyKind::none);
  // Each kind accepts everything the one before it does, and reads it the same way.
  auto json_only = check(http::parse_body(req, BodyKind::json_only), BodyKind::json_only);
  auto json_form = check(http::parse_body(req, BodyKind::json_form), BodyKind::json_form);
  auto multi = check(http::parse_body(req, BodyKind::json_form_multi), BodyKind::json_form_multi);
  if (json_only && json_form != json_only) fuzz::fail("json_form read a JSON body differently");
  // The flat-object fast path reads what nlohmann reads, or leaves the body to it.
  if (auto fast = http::parse_flat_string_object(req.body)) {
    json slow = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (slow.is_discarded() || slow != *fast)
      fuzz::fail("the flat-object fast path read a body other than nlohmann does", req.body);
  }
  if (json_form && multi != json_form) fuzz::fail("json_form_multi read a body differently");
  return 0;
}
