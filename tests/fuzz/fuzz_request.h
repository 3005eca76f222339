// Shared by the fuzz targets: Content-Type choices, a multipart stand-in, and the trap.
#pragma once

#include <httplib.h>

#include <array>
#include <cstdio>
#include <string>
#include <string_view>

namespace latch::fuzz {

// What a fuzz byte (modulo 8; '0'..'7' in the seeds) picks as the request's Content-Type.
// Empty means no Content-Type header at all.
inline constexpr std::array<const char *, 8> kContentTypes = {
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=----latchfuzz",
    "text/plain",
    "",
    " Application/JSON ; charset=UTF-8",
    "application/problem+json",
    "Multipart/Form-Data;boundary=x",
};

inline std::string lower(std::string s) {
  for (char &c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// Cuts the first line (without its '\n') off text and returns it; all of text if no '\n'.
inline std::string take_line(std::string &text) {
  const std::size_t nl = text.find('\n');
  std::string line = text.substr(0, nl);
  text.erase(0, nl == std::string::npos ? text.size() : nl + 1);
  return line;
}

// Fills req as cpp-httplib has it when a handler runs: the Content-Type header and the body.
// httplib parses multipart itself (req.files, empty req.body), so for a multipart type the
// body is split here instead: each line "name=value" is a field, "@name=value" a file upload.
inline void set_body(httplib::Request &req, const std::string &content_type, std::string body) {
  if (!content_type.empty()) req.set_header("Content-Type", content_type);
  if (lower(content_type).find("multipart/form-data") == std::string::npos) {
    req.body = std::move(body);
    return;
  }
  while (!body.empty()) {
    std::string line = take_line(body);
    httplib::MultipartFormData part;
    if (!line.empty() && line[0] == '@') {
      part.filename = "upload.bin";
      part.content_type = "application/octet-stream";
      line.erase(0, 1);
    }
    const std::size_t eq = line.find('=');
    part.name = line.substr(0, eq);
    part.content = eq == std::string::npos ? std::string() : line.substr(eq + 1);
    req.files.emplace(part.name, std::move(part));
  }
}

// A broken invariant: say which, then crash so libFuzzer keeps the input.
[[noreturn]] inline void fail(const char *what, std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz invariant broken: %s\n%.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::fflush(stderr);
  __builtin_trap();
}

} // namespace latch::fuzz
