// Request bodies: JSON, urlencoded and multipart forms, all turned into one JSON object.
#pragma once

#include "auth/http/context.h"

namespace latch::http {

inline constexpr int kMaxJsonDepth = 32;

// Parses req.body as the route allows. Errors: bad_body (malformed, not an object, too deep,
// bad UTF-8), unsupported_media_type.
Result<json> parse_body(const httplib::Request &req, BodyKind kind);

} // namespace latch::http
