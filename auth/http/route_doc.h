// What /openapi.json says about a route beyond its row, and about each API's wire shapes.
#pragma once

#include "auth/config.h"

#include <vector>

namespace latch::http {

// Schemas are JSON Schema text (`{"type":"string"}`) or the name of one of the API's
// components (`PicfluxError`), which the document references with $ref.
inline constexpr const char *kStringSchema = R"({"type":"string"})";

// A field of the request body. Fields are read as strings (http::field), so a form sends the
// same fields; a field of another type is named by its schema.
struct DocField {
  const char *name;
  bool required;
  const char *description;
  const char *schema = kStringSchema;
};

// A query parameter the handler reads.
struct DocParam {
  const char *name;
  bool required;
  const char *description;
  const char *schema = kStringSchema;
};

// One answer the handler gives: its status, body schema (nullptr: no body) and media type.
// Answers of one status are merged (alternative schemas become anyOf). `when`, if set, says
// whether the server's settings give this answer at all.
struct DocAnswer {
  int status;
  const char *schema;
  const char *description;
  const char *media_type = "application/json";
  const char *headers = nullptr; // JSON text: an OpenAPI headers object
  bool (*when)(const Config &) = nullptr;
};

// The route's own part of the document. What the row says adds the rest, in the API's shape
// (ApiDoc): 401 on Bearer routes, 429 on throttled ones, 503 on those that hash, and the
// answers of the request pipeline (400, 405, 413, 414, 415, 431, 500).
struct RouteDoc {
  std::vector<DocField> fields = {};
  std::vector<DocParam> query = {};
  std::vector<DocAnswer> answers = {};
};

// One API's wire shapes: its components/schemas and which of them its generic answers take.
struct ApiDoc {
  const char *framework;   // the tag's description: "<framework> at <the API's prefix>"
  const char *components;  // JSON text: {"Name": schema, ...}
  const char *error;       // its errors (400 from the pipeline, 405, 413, 415, 429, 500, 503)
  const char *token_error; // a 401 for a missing or bad Bearer token
  const char *token_error_headers = nullptr; // JSON text: that 401's headers
  int wrong_method = 405; // the status for another method on the path (NestJS: 404)
};

} // namespace latch::http
