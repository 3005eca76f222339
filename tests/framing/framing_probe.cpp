// Prints, as JSON, how Latch's strict framing (auth/http/framing.h) reads a connection's bytes:
// the target of tests/framing/differential.mjs --probe.
//
//   framing_probe          stdin is one request: prints its decision,
//                          {state, status, reason, bodyLength, bodySha256, consumed, ...}
//   framing_probe --all    stdin is a connection: prints the array of its requests' decisions
//   framing_probe --batch  each stdin line is a connection in hex: prints one array per line
//
// A connection is read as the loop reads it: a request after another while the last keeps the
// connection alive, until the bytes run out, a request is refused or one is incomplete.
#include "auth/http/framing.h"

#include <openssl/evp.h>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

using namespace latch::http;

namespace {

const FramingLimits kLimits{64 * 1024, 64 * 1024}; // as the reference server's
const std::size_t kMaxTrailers = 64 * 1024;

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), md, &size, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", md[i]);
    hex += b;
  }
  return hex;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      out += b;
    } else {
      out += char(c);
    }
  }
  return out + "\"";
}

struct Decision {
  std::string state; // complete, refused or incomplete
  int status = 0;
  std::string reason, method, target, version, body_sha256;
  std::size_t body_length = 0, consumed = 0; // consumed: bytes of the request, head and body
  bool keep_alive = false;
};

std::string to_json(const Decision &d) {
  return "{\"state\":" + json_string(d.state) + ",\"status\":" + std::to_string(d.status) +
         ",\"reason\":" + json_string(d.reason) + ",\"method\":" + json_string(d.method) +
         ",\"target\":" + json_string(d.target) + ",\"version\":" + json_string(d.version) +
         ",\"bodyLength\":" + std::to_string(d.body_length) +
         ",\"bodySha256\":" + json_string(d.body_sha256) +
         ",\"consumed\":" + std::to_string(d.consumed) +
         ",\"keepAlive\":" + (d.keep_alive ? "true" : "false") + "}";
}

// One request at the start of `input`.
Decision decide(std::string_view input) {
  Decision d;
  HeadResult r = parse_request_head(input, kLimits);
  d.method = std::string(r.head.method);
  d.target = std::string(r.head.target);
  if (r.state == HeadResult::State::incomplete) {
    d.state = "incomplete";
    return d;
  }
  if (r.state == HeadResult::State::refused) {
    d.state = "refused";
    d.status = r.status;
    d.reason = r.reason;
    return d;
  }
  const RequestHead &head = r.head;
  d.version = std::string(head.version);
  d.keep_alive = head.keep_alive;
  std::string body;
  std::size_t used = 0;
  const std::string_view rest = input.substr(head.size);
  if (head.body == RequestHead::Body::length) {
    if (rest.size() < head.content_length) {
      d.state = "incomplete";
      return d;
    }
    used = std::size_t(head.content_length);
    body = std::string(rest.substr(0, used));
  } else if (head.body == RequestHead::Body::chunked) {
    ChunkedDecoder decoder(kLimits.max_body, kMaxTrailers);
    switch (decoder.feed(rest, body, used)) {
    case ChunkedDecoder::State::more: d.state = "incomplete"; return d;
    case ChunkedDecoder::State::refused:
      d.state = "refused";
      d.status = decoder.status();
      d.reason = decoder.reason();
      return d;
    case ChunkedDecoder::State::done: d.keep_alive = decoder.keep_alive(head); break;
    }
  }
  d.state = "complete";
  d.body_length = body.size();
  d.body_sha256 = sha256_hex(body);
  d.consumed = head.size + used;
  return d;
}

// Every request on a connection, until one ends it.
std::vector<Decision> decide_all(std::string_view input) {
  std::vector<Decision> all;
  for (;;) {
    // What is left is only empty lines (skipped before a request): nothing more to read.
    if (input.find_first_not_of("\r\n") == std::string_view::npos) break;
    all.push_back(decide(input));
    const Decision &d = all.back();
    if (d.state != "complete" || !d.keep_alive) break;
    input.remove_prefix(d.consumed);
  }
  return all;
}

std::string array_json(const std::vector<Decision> &all) {
  std::string out = "[";
  for (const Decision &d : all)
    out += (out.size() > 1 ? "," : "") + to_json(d);
  return out + "]";
}

std::string from_hex(std::string_view hex) {
  std::string out;
  auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out += char(nibble(hex[i]) * 16 + nibble(hex[i + 1]));
  return out;
}

} // namespace

int main(int argc, char **argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "--batch") {
    std::string line;
    while (std::getline(std::cin, line))
      std::cout << array_json(decide_all(from_hex(line))) << '\n';
    return 0;
  }
  const std::string input(std::istreambuf_iterator<char>(std::cin), {});
  if (mode == "--all") {
    std::cout << array_json(decide_all(input)) << '\n';
  } else if (mode.empty()) {
    std::cout << to_json(decide(input)) << '\n';
  } else {
    std::cerr << "usage: framing_probe [--all | --batch] < input\n";
    return 2;
  }
  return 0;
}
