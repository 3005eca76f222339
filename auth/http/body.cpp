// Request body decoding with hard limits, so hostile bodies get a 4xx and nothing else.
#include "auth/http/body.h"

#include "auth/secure.h"

#include <algorithm>

namespace latch::http {

namespace {

std::string media_type(const httplib::Request &req) {
  std::string ct = req.get_header_value("Content-Type");
  ct = ct.substr(0, ct.find(';'));
  ct.erase(std::remove_if(ct.begin(), ct.end(), [](unsigned char c) { return std::isspace(c); }),
           ct.end());
  return lower_ascii(ct);
}

// Nesting depth outside strings; checked before parsing so deep input costs nothing.
bool depth_within(const std::string &text, int limit) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > limit) return false;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return true;
}

Result<json> parse_json(const std::string &text) {
  if (auto flat = parse_flat_string_object(text)) return std::move(*flat);
  if (!depth_within(text, kMaxJsonDepth)) return Error{ErrorCode::bad_body, "nesting too deep"};
  // nlohmann's parser rejects invalid UTF-8 in strings and trailing garbage.
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error{ErrorCode::bad_body, "malformed JSON"};
  if (!j.is_object()) return Error{ErrorCode::bad_body, "JSON body must be an object"};
  return j;
}

Result<json> parse_form(const std::string &text) {
  httplib::Params params;
  httplib::detail::parse_query_text(text, params); // cpp-httplib's own decoder
  json j = json::object();
  for (const auto &[k, v] : params) {
    if (!secure::valid_utf8(k) || !secure::valid_utf8(v))
      return Error{ErrorCode::bad_body, "form field is not UTF-8"};
    j[k] = v; // the last value wins, as in JSON bodies and Django's QueryDict
  }
  return j;
}

Result<json> parse_multipart(const httplib::Request &req) {
  json j = json::object();
  for (const auto &[name, part] : req.files) {
    if (!part.filename.empty()) continue; // file uploads are not fields
    if (!secure::valid_utf8(name) || !secure::valid_utf8(part.content))
      return Error{ErrorCode::bad_body, "form field is not UTF-8"};
    j[name] = part.content; // the last value wins, as above
  }
  return j;
}

} // namespace

std::optional<json> parse_flat_string_object(std::string_view text) {
  std::size_t i = 0;
  const std::size_t n = text.size();
  auto skip_ws = [&] {
    while (i < n && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
      ++i;
  };
  // A string of printable ASCII other than '"' and '\\', which stands for itself (RFC 8259 7).
  auto plain_string = [&](std::string_view &out) {
    if (i >= n || text[i] != '"') return false;
    const std::size_t begin = ++i;
    while (i < n && text[i] != '"') {
      const unsigned char c = static_cast<unsigned char>(text[i]);
      if (c < 0x20 || c > 0x7e || c == '\\') return false;
      ++i;
    }
    if (i >= n) return false;
    out = text.substr(begin, i++ - begin);
    return true;
  };
  skip_ws();
  if (i >= n || text[i++] != '{') return std::nullopt;
  json object = json::object();
  skip_ws();
  if (i < n && text[i] == '}') {
    ++i;
  } else {
    for (;;) {
      std::string_view key, value;
      if (!plain_string(key)) return std::nullopt;
      skip_ws();
      if (i >= n || text[i++] != ':') return std::nullopt;
      skip_ws();
      if (!plain_string(value)) return std::nullopt;
      object[std::string(key)] =
          std::string(value); // the last of a repeated key wins, as in nlohmann
      skip_ws();
      if (i < n && text[i] == ',') {
        ++i;
        skip_ws();
        continue;
      }
      if (i < n && text[i] == '}') {
        ++i;
        break;
      }
      return std::nullopt;
    }
  }
  skip_ws();
  if (i != n) return std::nullopt;
  return object;
}

Result<json> parse_body(const httplib::Request &req, BodyKind kind) {
  if (kind == BodyKind::none) return json::object();
  const std::string type = media_type(req);
  const bool blank = std::all_of(req.body.begin(), req.body.end(),
                                 [](unsigned char c) { return std::isspace(c); });
  if (type == "application/json" || type.ends_with("+json") || (type.empty() && !blank))
    return blank ? json::object() : parse_json(req.body);
  if (type.empty()) return json::object();
  if (type == "application/x-www-form-urlencoded" && kind != BodyKind::json_only)
    return parse_form(req.body);
  if (type == "multipart/form-data" && kind == BodyKind::json_form_multi)
    return parse_multipart(req);
  return Error{ErrorCode::unsupported_media_type, type};
}

} // namespace latch::http
