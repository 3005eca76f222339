// A raw client for tests: bytes as written, over TCP or TLS, from any loopback address, for
// what an HTTP library would tidy (a repeated header, a malformed length, pipelining, a stall).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace latch::test {

// One response as it came: its status, every header line in order (repeats kept), its body.
struct RawResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // How many header lines have this name (case-insensitive): a contract is "exactly once".
  int count(const std::string &name) const;
  // The value of the one line of that name; "" if none. A second copy fails the test.
  std::string header(const std::string &name) const;
};

class RawClient {
public:
  struct Options {
    bool tls = false;                 // speak TLS (no certificate check: the test's own server)
    std::string from = "127.0.0.1";   // the local address to connect from (127.0.0.0/8)
  };
  RawClient(int port, Options options);
  explicit RawClient(int port) : RawClient(port, Options{}) {}
  ~RawClient();
  RawClient(const RawClient &) = delete;
  RawClient &operator=(const RawClient &) = delete;

  bool connected() const { return connected_; }
  // Sends all of data; false if the connection is gone.
  bool send(const std::string &data);
  // Stops sending (half-close).
  void finish_sending();
  // Reads until `count` whole responses have come (a body as long as its Content-Length), the
  // server closes, or `limit` passes; returns everything received so far.
  std::string read(int count, std::chrono::milliseconds limit = std::chrono::seconds(5));
  // The responses received so far, parsed.
  std::vector<RawResponse> responses() const;
  // Whether the server closed the connection within `limit` (reading what comes meanwhile).
  bool closed_within(std::chrono::milliseconds limit);
  bool closed() const { return closed_; }

private:
  struct Tls;
  bool receive_some(int wait_ms);
  int fd_ = -1;
  std::unique_ptr<Tls> tls_;
  bool connected_ = false, closed_ = false;
  std::string got_;
};

// One request's bytes: a request line, header lines as given (repeats and all), a body.
std::string raw_request(const std::string &method, const std::string &target,
                        const std::vector<std::pair<std::string, std::string>> &headers,
                        const std::string &body = "");

} // namespace latch::test
