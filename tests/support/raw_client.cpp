// The raw test client: plain sockets or OpenSSL, and a small HTTP/1.1 response splitter.
#include "support/raw_client.h"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace latch::test {

namespace {

// The Content-Length of the head from `start` to `head_end` (the last line of that name wins),
// 0 if none.
std::size_t content_length(const std::string &s, std::size_t start, std::size_t head_end) {
  std::size_t length = 0;
  for (std::size_t line = s.find("\r\n", start); line < head_end; line = s.find("\r\n", line + 2)) {
    if (strncasecmp(s.c_str() + line + 2, "Content-Length:", 15) == 0)
      length = std::strtoul(s.c_str() + line + 17, nullptr, 10);
  }
  return length;
}

// The whole responses at the start of `s`, as (start, head end) of each.
std::vector<std::pair<std::size_t, std::size_t>> split_responses(const std::string &s) {
  std::vector<std::pair<std::size_t, std::size_t>> out; // (start, head end) of each
  std::size_t pos = 0;
  for (;;) {
    const auto head_end = s.find("\r\n\r\n", pos);
    if (head_end == std::string::npos) return out;
    const std::size_t length = content_length(s, pos, head_end);
    // 1xx answers have no body and are not the response.
    if (s.compare(pos, 10, "HTTP/1.1 1") == 0) {
      pos = head_end + 4;
      continue;
    }
    if (s.size() < head_end + 4 + length) return out;
    out.emplace_back(pos, head_end);
    pos = head_end + 4 + length;
  }
}

// The status of a status line "HTTP/1.x NNN ...", 0 if it is not one.
int status_of(const std::string &line) {
  if (line.size() < 12 || line.compare(0, 7, "HTTP/1.") != 0 ||
      (line[7] != '0' && line[7] != '1') || line[8] != ' ')
    return 0;
  for (std::size_t i = 9; i < 12; ++i)
    if (line[i] < '0' || line[i] > '9') return 0;
  if (line.size() > 12 && line[12] != ' ') return 0;
  return std::atoi(line.c_str() + 9);
}

} // namespace

int RawResponse::count(const std::string &name) const {
  int n = 0;
  for (const auto &[k, v] : headers)
    if (strcasecmp(k.c_str(), name.c_str()) == 0) ++n;
  return n;
}

std::vector<std::string> RawResponse::values(const std::string &name) const {
  std::vector<std::string> out;
  for (const auto &[k, v] : headers)
    if (strcasecmp(k.c_str(), name.c_str()) == 0) out.push_back(v);
  return out;
}

std::string RawResponse::header(const std::string &name) const {
  std::string value;
  int n = 0;
  for (const auto &[k, v] : headers)
    if (strcasecmp(k.c_str(), name.c_str()) == 0) {
      ++n;
      value = v;
    }
  CHECK_MESSAGE(n <= 1, "the response carries " << n << " " << name << " headers");
  return value;
}

struct RawClient::Tls {
  SSL_CTX *ctx = nullptr;
  SSL *ssl = nullptr;
  ~Tls() {
    if (ssl) SSL_free(ssl);
    if (ctx) SSL_CTX_free(ctx);
  }
};

RawClient::RawClient(int port, Options options) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  // The local port is chosen at connect, as without bind: thousands of connections a run
  // then never run out of ports held in TIME_WAIT.
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, options.from.c_str(), &local.sin_addr);
  ::bind(fd_, reinterpret_cast<sockaddr *>(&local), sizeof local);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  connected_ = ::connect(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0;
  if (!connected_ || !options.tls) return;
  tls_ = std::make_unique<Tls>();
  tls_->ctx = SSL_CTX_new(TLS_client_method());
  tls_->ssl = SSL_new(tls_->ctx);
  SSL_set_fd(tls_->ssl, fd_);
  connected_ = SSL_connect(tls_->ssl) == 1;
}

RawClient::~RawClient() {
  tls_.reset();
  if (fd_ >= 0) ::close(fd_);
}

bool RawClient::send(const std::string &data) {
  if (tls_) {
    std::size_t n = 0;
    return SSL_write_ex(tls_->ssl, data.data(), data.size(), &n) == 1 && n == data.size();
  }
  return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == ssize_t(data.size());
}

std::string RawClient::send_while_reading(const std::string &data, int count,
                                          std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  auto left = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                 std::chrono::steady_clock::now());
  };
  if (tls_) {
    send(data);
    return read(count, left());
  }
  std::size_t sent = 0;
  while (connected_ && sent < data.size() && !closed_ &&
         int(split_responses(got_).size()) < count && left().count() > 0) {
    pollfd p{fd_, POLLIN | POLLOUT, 0};
    const int ready = ::poll(&p, 1, int(left().count()));
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) receive_some(0);
    if (p.revents & POLLOUT) {
      const ssize_t put =
          ::send(fd_, data.data() + sent, std::min<std::size_t>(data.size() - sent, 65536),
                 MSG_NOSIGNAL | MSG_DONTWAIT);
      if (put > 0)
        sent += std::size_t(put);
      else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        break; // gone
    }
  }
  return read(count, std::max(left(), std::chrono::milliseconds(0)));
}

void RawClient::finish_sending() {
  ::shutdown(fd_, SHUT_WR);
}

// Waits up to wait_ms for bytes and appends them; false once nothing more will come now.
bool RawClient::receive_some(int wait_ms) {
  if (!(tls_ && SSL_pending(tls_->ssl) > 0)) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, wait_ms) <= 0) return false;
  }
  char buf[65536];
  if (tls_) {
    std::size_t n = 0;
    if (SSL_read_ex(tls_->ssl, buf, sizeof buf, &n) != 1) {
      closed_ = true;
      return false;
    }
    got_.append(buf, n);
    return true;
  }
  ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
  if (n <= 0) {
    closed_ = true;
    return false;
  }
  got_.append(buf, std::size_t(n));
  return true;
}

std::string RawClient::read(int count, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (int(split_responses(got_).size()) < count && !closed_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    receive_some(int(left.count()));
  }
  return got_;
}

std::string RawClient::read_head(std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (got_.find("\r\n\r\n") == std::string::npos && !closed_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    if (!receive_some(int(left.count())) && !closed_) break; // nothing came in time
  }
  return got_;
}

bool RawClient::open() const {
  if (closed_) return false;
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, 0) == 0) return true;
  char c;
  return ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

std::vector<RawResponse> RawClient::responses() const {
  std::vector<RawResponse> out;
  for (const auto &[start, head_end] : split_responses(got_)) {
    RawResponse r;
    r.status = status_of(got_.substr(start, got_.find("\r\n", start) - start));
    std::size_t line = got_.find("\r\n", start) + 2;
    while (line < head_end + 2) {
      const std::size_t end = got_.find("\r\n", line);
      const std::string text = got_.substr(line, end - line);
      const std::size_t colon = text.find(':');
      std::string value = colon == std::string::npos ? "" : text.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      r.headers.emplace_back(text.substr(0, colon), value);
      line = end + 2;
    }
    r.body = got_.substr(head_end + 4, content_length(got_, start, head_end));
    out.push_back(std::move(r));
  }
  return out;
}

bool RawClient::closed_within(std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!closed_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    receive_some(int(left.count()));
  }
  return closed_;
}

std::string raw_request(const std::string &method, const std::string &target,
                        const std::vector<std::pair<std::string, std::string>> &headers,
                        const std::string &body) {
  std::string out = method + " " + target + " HTTP/1.1\r\n";
  for (const auto &[k, v] : headers)
    out += k + ": " + v + "\r\n";
  out += "\r\n" + body;
  return out;
}

} // namespace latch::test
