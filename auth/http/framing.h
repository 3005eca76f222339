// TEMPORARY stand-in for the strict framing parser (being written on branch i12-framing).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace latch::http {

struct FramingLimits {
  std::size_t max_head = 64 * 1024;
  std::size_t max_body = 64 * 1024;
};
struct FieldLine {
  std::string_view name, value;
};
struct RequestHead {
  std::string_view method, target, version;
  std::vector<FieldLine> fields;
  std::size_t size = 0;
  enum class Body { none, length, chunked } body = Body::none;
  std::uint64_t content_length = 0;
  bool expect_continue = false;
  bool keep_alive = true;
};
struct HeadResult {
  enum class State { incomplete, complete, refused } state = State::incomplete;
  RequestHead head;
  int status = 0;
  const char *reason = "";
};
HeadResult parse_request_head(std::string_view input, const FramingLimits &limits);
std::size_t find_head_end(std::string_view input, std::size_t from);

class ChunkedDecoder {
public:
  ChunkedDecoder(std::size_t max_body, std::size_t max_trailers)
      : max_body_(max_body), max_trailers_(max_trailers) {}
  enum class State { more, done, refused };
  State feed(std::string_view input, std::string &body, std::size_t &consumed);
  int status() const { return status_; }
  const char *reason() const { return reason_; }

private:
  enum class Phase { size, data, data_end, trailer } phase_ = Phase::size;
  std::size_t max_body_, max_trailers_;
  std::uint64_t left_ = 0;
  std::size_t trailers_ = 0;
  std::string line_;
  int status_ = 0;
  const char *reason_ = "";
};

} // namespace latch::http
