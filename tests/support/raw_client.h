// A raw client for tests: bytes as written, over TCP or TLS, from any loopback address, for
// what an HTTP library would tidy (a repeated header, a malformed length, pipelining, a stall).
#pragma once

#include <chrono>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace latch::test {

// One response as it came: its status, every header line in order (repeats kept), its body.
struct RawResponse {
  int status = 0; // 0 when the status line is not "HTTP/1.x NNN ..."
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // How many header lines have this name (case-insensitive): a contract is "exactly once".
  int count(const std::string &name) const;
  // The values of every line of that name, in order.
  std::vector<std::string> values(const std::string &name) const;
  // The value of the one line of that name; "" if none. A second copy fails the test.
  std::string header(const std::string &name) const;
};

// No doctest assertion runs inside RawClient (only RawResponse::header checks), so a test's
// worker threads may use one each.
class RawClient {
public:
  // A count for read() and send_while_reading(): read until the server closes.
  static constexpr int until_closed = std::numeric_limits<int>::max();

  struct Options {
    bool tls = false;               // speak TLS (no certificate check: the test's own server)
    std::string from = "127.0.0.1"; // the local address to connect from (127.0.0.0/8)
  };
  RawClient(int port, Options options);
  explicit RawClient(int port) : RawClient(port, Options{}) {}
  ~RawClient();
  RawClient(const RawClient &) = delete;
  RawClient &operator=(const RawClient &) = delete;

  bool connected() const { return connected_; }
  // Sends all of data (blocking); false if the connection is gone.
  bool send(const std::string &data);
  // Sends data while reading what comes back, as a client must when the server may answer
  // before it has read a large body (413) and stop reading: stops sending once `count` whole
  // responses have come or the connection fails, then reads as read() does; all within
  // `limit`. Over TLS it sends, then reads. Returns everything received so far.
  std::string send_while_reading(const std::string &data, int count,
                                 std::chrono::milliseconds limit);
  // Stops sending (half-close).
  void finish_sending();
  // Reads until `count` whole responses have come since the connection opened (a body as long
  // as its Content-Length; 1xx answers are not counted), the server closes, or `limit` passes;
  // returns everything received so far.
  std::string read(int count, std::chrono::milliseconds limit = std::chrono::seconds(5));
  // Reads until the first response head has come (a 1xx one too; its body need not have), the
  // server closes, or `limit` passes; returns everything received so far.
  std::string read_head(std::chrono::milliseconds limit);
  // The responses received so far, parsed.
  std::vector<RawResponse> responses() const;
  // Whether the server closed the connection within `limit` (reading what comes meanwhile).
  bool closed_within(std::chrono::milliseconds limit);
  // Whether reading has seen the server close.
  bool closed() const { return closed_; }
  // Whether the server still holds the connection open, looked at now without waiting or
  // reading anything: no FIN or reset has arrived (bytes waiting unread count as open).
  bool open() const;

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
