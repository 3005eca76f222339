// Request bodies: JSON, urlencoded and multipart forms, all turned into one JSON object.
#pragma once

#include "auth/http/context.h"

#include <optional>
#include <string_view>

namespace latch::http {

inline constexpr int kMaxJsonDepth = 32;

// Parses req.body as the route allows. Errors: bad_body (malformed, not an object, too deep,
// bad UTF-8), unsupported_media_type.
Result<json> parse_body(const httplib::Request &req, BodyKind kind);

// The JSON body clients send nearly always: one flat object whose keys and values are strings
// of printable ASCII without escapes ({"token":"eyJ..."}, {"username":"a","password":"b"}),
// read in one pass. Anything else (numbers, nesting, escapes, other bytes, a byte-order mark)
// is nullopt and goes to nlohmann's parser, with which this agrees on every input it reads:
// tests/unit/test_body.cpp and the fuzz_body target compare the two. nlohmann's lexer spends
// about 50 instructions a byte, which made parsing a token 35% of a verify request's cost.
std::optional<json> parse_flat_string_object(std::string_view text);

} // namespace latch::http
