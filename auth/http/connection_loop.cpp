// The connection loop under cpp-httplib (connection_loop.h says what it does and why).
#include "auth/http/connection_loop.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string_view>

// This file overrides cpp-httplib's private virtual process_and_close_socket, calls its
// protected process_request with requests it has framed itself, reads its protected settings
// (time-outs, keep-alive count, payload_max_length_, svr_sock_), and mirrors three of its
// limits (kHttplibLineMax). On another version re-check: that process_and_close_socket is
// still the per-connection hook (listen_internal: accept, then task_queue->enqueue), that
// process_request(strm, close_connection, connection_closed, setup_request) still parses one
// request from strm and writes one response, that setup_request runs before the pre-routing
// handler, that header values are still URL-decoded (parse_header: the check on decoded values
// below), the line limits, and which methods parse_request_line accepts.
static_assert(std::string_view(CPPHTTPLIB_VERSION).substr(0, 5) == "0.11.",
              "connection_loop.cpp was written against cpp-httplib 0.11: re-verify it (see above)");

namespace latch::http {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::uint64_t kWakeToken = ~std::uint64_t{0};
constexpr std::uint64_t kKickToken = ~std::uint64_t{0} - 1; // parked requests have room
constexpr std::size_t kReadStep = 16 * 1024;                // one recv
constexpr std::size_t kFlushAt = 256 * 1024;     // a response is sent in pieces past this
constexpr std::size_t kKeepScratch = 256 * 1024; // per-thread buffers shrink back past this
constexpr std::size_t kMaxTrailers = 8 * 1024;   // a chunked body's trailer section
// After refusing a request the client may still be sending (its body, more requests): the
// answer goes out, sending stops, and what comes is read and dropped for a while, so the
// client's kernel does not reset the connection before it reads the answer.
constexpr auto kLingerFor = 2s;
constexpr std::size_t kLingerMax = 8 * 1024 * 1024; // bytes dropped before closing anyway
constexpr int kRetireAfterMs = 10'000;              // a spare worker idle this long exits
constexpr auto kSweepEvery = 250ms;                 // time-outs are this precise
constexpr auto kStuckAfter = 5ms;                   // every worker busy, none done: start one
// cpp-httplib 0.11 answers 414 to a request line, and 400 to a field line, longer than this
// (CPPHTTPLIB_REQUEST_URI_MAX_LENGTH, CPPHTTPLIB_HEADER_MAX_LENGTH; line end included).
constexpr std::size_t kHttplibLineMax = 8192;
// The methods cpp-httplib 0.11's parse_request_line accepts; others never reach it.
constexpr std::array<std::string_view, 7> kRoutableMethods = {"GET",    "HEAD",    "POST", "PUT",
                                                              "DELETE", "OPTIONS", "PATCH"};
// Set by the loop on the request it hands over (setup_request). '@' is not a token character,
// so a field of that name never comes from a client: framing.h refuses such names.
constexpr const char *kRefusedField = "@latch-refused";
constexpr const char *kTagField = "@latch-tag";
constexpr const char *kDroppedField = "@latch-dropped";
constexpr const char *kLineFullField = "@latch-line-full";

// cpp-httplib runs the connection loop through its task queue; here accepting a connection
// only registers it, which the accepting thread does itself.
class InlineQueue : public httplib::TaskQueue {
public:
  void enqueue(std::function<void()> job) override { job(); }
  void shutdown() override {}
};

// The numeric address and port of a socket's peer (or, `local`, its own end), as cpp-httplib
// reports them in Request::remote_addr and local_addr; `key` is the peer's address block for
// the per-address cap: the IPv4 address, or an IPv6 address's /64.
void socket_address(int fd, bool local, std::string &ip, int &port, std::string *key) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  auto *sa = reinterpret_cast<sockaddr *>(&addr);
  if ((local ? ::getsockname(fd, sa, &len) : ::getpeername(fd, sa, &len)) != 0) return;
  if (addr.ss_family == AF_INET) {
    const auto *in = reinterpret_cast<sockaddr_in *>(&addr);
    port = ntohs(in->sin_port);
    if (key) key->assign(reinterpret_cast<const char *>(&in->sin_addr), 4);
  } else if (addr.ss_family == AF_INET6) {
    const auto *in6 = reinterpret_cast<sockaddr_in6 *>(&addr);
    port = ntohs(in6->sin6_port);
    if (key) {
      const auto *bytes = reinterpret_cast<const char *>(&in6->sin6_addr);
      if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
        key->assign(bytes + 12, 4);
      else
        key->assign(bytes, 8); // one /64: what one client is usually given
    }
  }
  std::array<char, NI_MAXHOST> host{};
  if (::getnameinfo(sa, len, host.data(), socklen_t(host.size()), nullptr, 0, NI_NUMERICHOST) == 0)
    ip = host.data();
}

int to_ms(time_t sec, time_t usec) {
  return int(sec * 1000 + usec / 1000);
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool routable(std::string_view method) {
  return std::find(kRoutableMethods.begin(), kRoutableMethods.end(), method) !=
         kRoutableMethods.end();
}

// The path cpp-httplib routes by: the target before '?' and '#', URL-decoded as it decodes it.
std::string decoded_path(std::string_view target) {
  target = target.substr(0, target.find_first_of("?#"));
  return httplib::detail::decode_url(std::string(target), false);
}

// Whether a field line is left out of the request handed to cpp-httplib. Framing and
// connection fields are the loop's: the handed-over request carries its own Content-Length,
// and whether the connection stays open is framing.h's decision (cpp-httplib would read
// "Connection: close<TAB>" or an HTTP/1.0 "keep-alive" differently). Range would make
// cpp-httplib cut a JSON answer to a byte range.
bool framing_field(std::string_view name) {
  for (std::string_view f : {"content-length", "transfer-encoding", "expect", "range", "connection",
                             "proxy-connection", "keep-alive", "upgrade"})
    if (iequals(name, f)) return true;
  return false;
}

// cpp-httplib URL-decodes every header value: one whose decoding holds a NUL, CR or LF would be
// cut (get_header_value stops at a NUL) or read differently by a proxy in front.
bool decodes_to_control(std::string_view value) {
  if (value.find('%') == std::string_view::npos) return false;
  std::string decoded = httplib::detail::decode_url(std::string(value), false);
  return decoded.find_first_of(std::string_view("\0\r\n", 3)) != std::string::npos;
}

// Whether a thread of this process is asleep in the kernel (Linux's thread state S or D: a
// lock, a condition, a socket), as opposed to running or waiting for a core.
bool thread_waits_in_kernel(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", int(tid));
  FILE *f = std::fopen(path, "re");
  if (!f) return false;
  char line[512];
  const bool got = std::fgets(line, sizeof line, f) != nullptr;
  std::fclose(f);
  const char *after_name = got ? std::strrchr(line, ')') : nullptr; // "tid (comm) S ..."
  return after_name && (after_name[2] == 'S' || after_name[2] == 'D');
}

} // namespace

struct ConnectionLoop::Worker {
  std::thread thread;
  std::atomic<pid_t> tid = 0;
  std::atomic<Clock::rep> busy_since = 0; // when it took its connection; 0 while idle
  bool retired = false;                   // it has left work(): join it
};

// A request framed and whole, as it goes to cpp-httplib.
struct ConnectionLoop::Ready {
  std::string_view head; // request line and field lines, framing ones left out, no blank line
  std::string_view body;
  Verdict verdict;
  bool keep_alive = true;
  std::vector<std::string> dropped;   // field names left out for their length
  std::string owned_head, owned_body; // a parked request's own copy (head and body view these)
};

// A request whose head is framed and whose body is still arriving.
struct ConnectionLoop::Partial {
  std::string head; // also the stand-in if the body is refused: it names the route
  bool named = false;
  bool http11 = true;
  Verdict verdict;
  bool keep_alive = true;
  std::vector<std::string> dropped;
  std::uint64_t need = 0;                  // Content-Length bytes still to come
  std::unique_ptr<ChunkedDecoder> chunked; // or a chunked body
  std::string body;
};

struct ConnectionLoop::Connection {
  int fd = -1;
  std::uint32_t id = 0;    // tells this connection from a later one given the same descriptor
  SSL *ssl = nullptr;      // with TLS
  bool handshaken = false; // TLS: the handshake is done
  bool busy = false;       // a worker has it; otherwise it waits in the epoll set
  bool more = false;       // bytes came (or may be unread) while busy: serve it again
  bool hangup = false;     // the client has closed its side (or the socket failed): read to the end
  bool read_shut = false;  // timed out holding half a request: its reading side is shut
  bool was_parked = false; // just taken from parked_: its request goes first
  bool lingering = false;  // answered and half-closed: what comes is dropped until the end
  std::size_t dropped = 0; // bytes dropped while lingering
  Clock::time_point deadline;
  Clock::time_point last_active;     // for choosing the connection idle longest
  Clock::time_point request_started; // first byte of the request in progress
  std::string pending;               // bytes of a request not yet framed
  HeadParser parser;                 // the head being read, resumed as its bytes come
  std::unique_ptr<Partial> partial;  // a request whose body is arriving
  std::unique_ptr<Ready> parked;     // a whole heavy request waiting for room
  std::size_t served = 0;
  std::string remote_ip, local_ip, address_key;
  int remote_port = 0, local_port = 0;
  bool counted = false; // in per_address_

  std::uint64_t token() const { return std::uint64_t(id) << 32 | std::uint32_t(fd); }
  bool idle() const { return !busy && pending.empty() && !partial && !parked; }
};

// One request for process_request: the head, one Content-Length line, the end of the head and
// the body, all from memory; the response goes into a buffer sent once the request is done.
class ConnectionLoop::RequestStream : public httplib::Stream {
public:
  RequestStream(const ConnectionLoop &loop, Connection &c, const Ready &ready, std::string &out)
      : loop_(loop), c_(c), out_(out), body_(ready.body) {
    head_.reserve(ready.head.size() + 32);
    head_ = ready.head;
    // Every request carries its length, so cpp-httplib never reads on to find its end.
    if (!ready.body.empty() || !ready.head.starts_with("GET "))
      head_ += "Content-Length: " + std::to_string(ready.body.size()) + "\r\n";
    head_ += "\r\n";
  }

  bool is_readable() const override { return pos_ < head_.size() + body_.size(); }
  bool is_writable() const override { return !failed_; }

  ssize_t read(char *ptr, size_t size) override {
    if (pos_ < head_.size()) {
      if (size == 1) { // cpp-httplib reads the request line and headers a byte a call
        *ptr = head_[pos_++];
        return 1;
      }
      std::size_t n = std::min(size, head_.size() - pos_);
      std::memcpy(ptr, head_.data() + pos_, n);
      pos_ += n;
      return ssize_t(n);
    }
    const std::size_t at = pos_ - head_.size();
    if (at >= body_.size()) return 0;
    std::size_t n = std::min(size, body_.size() - at);
    std::memcpy(ptr, body_.data() + at, n);
    pos_ += n;
    return ssize_t(n);
  }

  ssize_t write(const char *ptr, size_t size) override {
    if (failed_) return -1;
    out_.append(ptr, size);
    if (out_.size() >= kFlushAt && !loop_.send_all(c_, out_)) failed_ = true;
    return failed_ ? -1 : ssize_t(size);
  }

  void get_remote_ip_and_port(std::string &ip, int &port) const override {
    ip = c_.remote_ip;
    port = c_.remote_port;
  }
  void get_local_ip_and_port(std::string &ip, int &port) const override {
    ip = c_.local_ip;
    port = c_.local_port;
  }
  socket_t socket() const override { return c_.fd; }

  bool failed() const { return failed_; }

private:
  const ConnectionLoop &loop_;
  Connection &c_;
  std::string &out_;
  std::string head_;
  std::string_view body_;
  std::size_t pos_ = 0;
  bool failed_ = false; // a send failed: the connection is gone
};

ConnectionLoop::ConnectionLoop(Settings settings) : options_(std::move(settings)) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  kick_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_fd_ < 0 || wake_fd_ < 0 || kick_fd_ < 0)
    throw std::runtime_error(std::string("cannot set up epoll: ") + std::strerror(errno));
  epoll_event wake{};
  wake.events = EPOLLIN; // level-triggered and never read: once written, wakes every worker
  wake.data.u64 = kWakeToken;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &wake);
  epoll_event kick{};
  kick.events = EPOLLIN | EPOLLET; // one worker a write
  kick.data.u64 = kKickToken;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, kick_fd_, &kick);
  if (options_.tls) SSL_CTX_up_ref(tls_ = options_.tls);
  new_task_queue = [] { return new InlineQueue; };
  // Refusals are answered before any handler: the stand-in request the loop hands over for
  // one carries its status.
  Server::set_pre_routing_handler([this](const httplib::Request &req, httplib::Response &res) {
    const int status = refusal_status(req);
    if (status == 0) return HandlerResponse::Unhandled;
    res.status = status;
    if (refusal_handler_) refusal_handler_(req, res);
    return HandlerResponse::Handled;
  });
  {
    std::lock_guard lock(threads_mutex_);
    for (std::size_t i = 0; i < std::max<std::size_t>(options_.threads, 1); ++i)
      start_worker_locked();
  }
  monitor_ = std::thread([this] { monitor(); });
}

ConnectionLoop::~ConnectionLoop() {
  drain();
  ::close(kick_fd_);
  ::close(wake_fd_);
  ::close(epoll_fd_);
  if (tls_) SSL_CTX_free(tls_);
}

void ConnectionLoop::set_tls(ssl_ctx_st *tls) {
  SSL_CTX_up_ref(tls);
  SSL_CTX *old;
  {
    std::lock_guard lock(tls_mutex_);
    old = tls_;
    tls_ = tls;
  }
  if (old) SSL_CTX_free(old); // connections made with it hold their own reference
}

void ConnectionLoop::set_refusal_handler(Handler handler) {
  refusal_handler_ = std::move(handler);
}

int ConnectionLoop::refusal_status(const httplib::Request &req) {
  auto it = req.headers.find(kRefusedField);
  return it == req.headers.end() ? 0 : std::atoi(it->second.c_str());
}

int ConnectionLoop::tag_of(const httplib::Request &req) {
  auto it = req.headers.find(kTagField);
  return it == req.headers.end() ? -1 : std::atoi(it->second.c_str());
}

bool ConnectionLoop::line_full(const httplib::Request &req) {
  return req.has_header(kLineFullField);
}

bool ConnectionLoop::field_dropped(const httplib::Request &req, std::string_view name) {
  auto [from, to] = req.headers.equal_range(kDroppedField);
  return std::any_of(from, to, [&](const auto &h) { return iequals(h.second, name); });
}

std::chrono::steady_clock::duration ConnectionLoop::keep_alive_timeout() const {
  return std::chrono::seconds(keep_alive_timeout_sec_);
}

std::chrono::steady_clock::duration ConnectionLoop::read_timeout() const {
  return std::chrono::milliseconds(to_ms(read_timeout_sec_, read_timeout_usec_));
}

int ConnectionLoop::write_timeout_ms() const {
  return to_ms(write_timeout_sec_, write_timeout_usec_);
}

bool ConnectionLoop::process_and_close_socket(socket_t sock) {
  auto c = std::make_unique<Connection>();
  c->fd = sock;
  c->parser = HeadParser({options_.max_head, payload_max_length_});
  socket_address(sock, false, c->remote_ip, c->remote_port, &c->address_key);
  socket_address(sock, true, c->local_ip, c->local_port, nullptr);
  const bool capped = options_.max_per_address > 0 && !c->address_key.empty() &&
                      !(options_.unlimited && options_.unlimited(c->remote_ip));
  {
    std::unique_lock lock(connections_mutex_);
    for (;;) {
      if (draining_ || svr_sock_ == INVALID_SOCKET) {
        lock.unlock();
        ::close(sock);
        return false;
      }
      // Counted before any byte is read, so holding connections open costs the holder its own
      // share and nobody else's.
      auto held = capped ? per_address_.find(c->address_key) : per_address_.end();
      if (held != per_address_.end() && held->second >= options_.max_per_address) {
        ++refused_per_address_;
        lock.unlock();
        if (!options_.tls) {
          static constexpr std::string_view busy = "HTTP/1.1 503 Service Unavailable\r\n"
                                                   "Content-Length: 0\r\nConnection: close\r\n"
                                                   "Retry-After: 1\r\n\r\n";
          if (::send(sock, busy.data(), busy.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
            /* the connection ends either way */
          }
        }
        ::close(sock);
        return false;
      }
      if (open_ < options_.max_connections || evict_idle_locked()) break;
      room_.wait_for(lock, 100ms);
    }
    if (capped) {
      ++per_address_[c->address_key];
      c->counted = true;
    }
    ++open_; // the slot is taken now; the descriptor table below fills it
  }
  ::fcntl(sock, F_SETFL, ::fcntl(sock, F_GETFL) | O_NONBLOCK);
  if (options_.tls) {
    {
      std::lock_guard lock(tls_mutex_);
      c->ssl = SSL_new(tls_);
    }
    if (!c->ssl || SSL_set_fd(c->ssl, sock) != 1) {
      std::lock_guard lock(connections_mutex_);
      if (c->ssl) SSL_free(c->ssl);
      c->ssl = nullptr;
      --open_;
      if (c->counted && --per_address_[c->address_key] == 0) per_address_.erase(c->address_key);
      ::close(sock);
      return false;
    }
    SSL_set_accept_state(c->ssl);
  }
  std::lock_guard lock(connections_mutex_);
  if (std::size_t(sock) >= connections_.size())
    connections_.resize(std::max<std::size_t>(std::size_t(sock) + 1, connections_.size() * 2));
  c->id = ++next_id_;
  c->last_active = Clock::now();
  c->deadline = c->last_active + read_timeout();
  epoll_event ev{};
  // Edge-triggered: one event each time bytes arrive, to whichever worker waits, and nothing
  // to re-arm after each request (one system call fewer a request).
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = c->token();
  Connection &registered = *(connections_[std::size_t(sock)] = std::move(c));
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, sock, &ev) != 0) {
    close_locked(registered);
    return false;
  }
  return true;
}

// Closes the connection that has been idle (no request under way) the longest; false if none
// is idle.
bool ConnectionLoop::evict_idle_locked() {
  Connection *oldest = nullptr;
  for (auto &c : connections_)
    if (c && c->idle() && (!oldest || c->last_active < oldest->last_active)) oldest = c.get();
  if (!oldest) return false;
  ++evicted_idle_;
  close_locked(*oldest);
  return true;
}

void ConnectionLoop::start_worker_locked() {
  ++alive_;
  peak_ = std::max(peak_, alive_);
  auto &w = *workers_.emplace_back(std::make_unique<Worker>());
  w.thread = std::thread([this, &w] { work(w); });
}

void ConnectionLoop::join_retired_locked() {
  std::erase_if(workers_, [](const std::unique_ptr<Worker> &w) {
    if (!w->retired) return false;
    w->thread.join(); // it has left work(): this returns at once
    return true;
  });
}

// Whether another worker would help: a busy one is asleep in the kernel (a lock, a condition,
// a socket), or has been on one request for 20 ms. Not stuck: workers only waiting for a core
// (a short request).
bool ConnectionLoop::some_worker_stuck_locked(Clock::time_point now) const {
  for (const auto &w : workers_) {
    const Clock::rep since = w->busy_since;
    if (since == 0 || w->retired) continue;
    if (now - Clock::time_point(Clock::duration(since)) >= 4 * kStuckAfter) return true;
    if (thread_waits_in_kernel(w->tid)) return true;
  }
  return false;
}

void ConnectionLoop::work(Worker &self) {
  self.tid = pid_t(::gettid());
  for (;;) {
    epoll_event ev{};
    idle_.fetch_add(1);
    int n = ::epoll_wait(epoll_fd_, &ev, 1, kRetireAfterMs);
    const std::size_t idle_now = idle_.fetch_sub(1) - 1;
    if (draining_) return;
    if (n == 0) {
      if (retire_if_spare(self, true)) return;
      continue;
    }
    if (n < 0 || ev.data.u64 == kWakeToken) continue;
    if (ev.data.u64 == kKickToken) {
      std::uint64_t count;
      if (::read(kick_fd_, &count, sizeof count) < 0) { /* another worker read it */
      }
      serve_parked();
      continue;
    }
    Connection *c = claim(ev.data.u64, ev.events);
    if (!c) continue; // closed by a time-out meanwhile
    self.busy_since = Clock::now().time_since_epoch().count();
    if (idle_now == 0 && monitor_resting_.exchange(false)) monitor_wake_.notify_one();
    try {
      while (serve(*c) && release(*c)) {
      }
      if (parked_waiting_) serve_parked();
    } catch (const std::exception &) {
      close(*c); // out of memory, say: this connection ends, the server goes on
    }
    self.busy_since = 0;
    progress_.fetch_add(1, std::memory_order_relaxed);
    // A worker started for a stuck moment leaves as soon as another is free: under steady load
    // no worker idles for the 10 s above, and more workers than cores only take turns.
    if (idle_ > 0 && retire_if_spare(self, false)) return;
  }
}

bool ConnectionLoop::retire_if_spare(Worker &self, bool load_over) {
  std::unique_lock lock(threads_mutex_);
  if (alive_ <= options_.threads) return false;
  --alive_;
  self.retired = true;
  const bool back_to_core = alive_ == options_.threads;
  lock.unlock();
  // malloc keeps what a burst's threads freed otherwise, several MB after a few hundred.
  if (load_over && back_to_core) malloc_trim(0);
  return true;
}

ConnectionLoop::Connection *ConnectionLoop::claim(std::uint64_t token, std::uint32_t events) {
  const auto fd = std::size_t(std::uint32_t(token));
  std::lock_guard lock(connections_mutex_);
  if (fd >= connections_.size()) return nullptr;
  Connection *c = connections_[fd].get();
  if (!c || c->token() != token) return nullptr;
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->hangup = true;
  if (c->busy) { // its worker reads again before letting it go
    c->more = true;
    return nullptr;
  }
  c->busy = true;
  c->more = false;
  return c;
}

// Moves a TLS handshake on as far as the bytes that have come allow; false if it failed.
bool ConnectionLoop::handshake(Connection &c) {
  for (;;) {
    ERR_clear_error();
    const int r = SSL_do_handshake(c.ssl);
    if (r == 1) {
      c.handshaken = true;
      return true;
    }
    const int err = SSL_get_error(c.ssl, r);
    if (err == SSL_ERROR_WANT_READ) return true; // more when the client sends it
    if (err != SSL_ERROR_WANT_WRITE) return false;
    pollfd p{c.fd, POLLOUT, 0};
    if (::poll(&p, 1, write_timeout_ms()) <= 0) return false;
  }
}

bool ConnectionLoop::receive(Connection &c, std::string &in, bool hangup) {
  // Enough for any request the limits allow to be framed; the rest waits in the socket,
  // without another event, until this much has been framed.
  const std::size_t enough = options_.max_head + payload_max_length_ + kReadStep;
  for (;;) {
    if (in.size() >= enough) {
      std::lock_guard lock(connections_mutex_);
      c.more = true;
      return true;
    }
    char chunk[kReadStep];
    if (c.ssl) {
      std::size_t n = 0;
      ERR_clear_error();
      const int r = SSL_read_ex(c.ssl, chunk, sizeof chunk, &n);
      if (r == 1) {
        in.append(chunk, n);
        continue; // until the socket has nothing left: the epoll events are edge-triggered
      }
      const int err = SSL_get_error(c.ssl, 0);
      if (err == SSL_ERROR_WANT_READ) return true;
      if (err == SSL_ERROR_WANT_WRITE) {
        pollfd p{c.fd, POLLOUT, 0};
        if (::poll(&p, 1, write_timeout_ms()) > 0) continue;
      }
      return false; // closed (close_notify or not), or broken
    }
    ssize_t n = ::recv(c.fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n > 0) {
      in.append(chunk, std::size_t(n));
      if (std::size_t(n) < sizeof chunk && !hangup) return true; // the rest has not arrived
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false; // closed, or reset
  }
}

// Stops sending on c and drops what it sends from now on; false once it is to be closed.
bool ConnectionLoop::linger(Connection &c) {
  if (!c.lingering) {
    c.lingering = true;
    c.pending.clear();
    c.partial.reset();
    c.deadline = Clock::now() + kLingerFor;
    if (c.ssl) {
      SSL_shutdown(c.ssl); // close_notify; the rest of its input is not decrypted
      SSL_free(c.ssl);
      c.ssl = nullptr;
    }
    ::shutdown(c.fd, SHUT_WR);
  }
  char chunk[kReadStep];
  for (;;) {
    ssize_t n = ::recv(c.fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n > 0) {
      c.dropped += std::size_t(n);
      if (c.dropped > kLingerMax) return false;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK); // else: the client is done
  }
}

bool ConnectionLoop::serve(Connection &c) {
  if (c.lingering) {
    if (linger(c)) return true;
    close(c);
    return false;
  }
  if (c.ssl && !c.handshaken) {
    if (!handshake(c)) {
      close(c);
      return false;
    }
    if (!c.handshaken) return true; // wait for the client's next flight
  }
  // The input is the connection's own buffer only while it holds part of a request; otherwise
  // it is this thread's, so a whole request arriving at once is never copied or allocated.
  thread_local std::string scratch, out;
  const bool had_pending = !c.pending.empty();
  std::string &in = had_pending ? c.pending : scratch;
  if (!had_pending) scratch.clear();
  bool hangup;
  {
    std::lock_guard lock(connections_mutex_);
    hangup = c.hangup;
  }
  const bool peer_done = !receive(c, in, hangup);

  out.clear();
  bool keep = true, parked = false;
  std::size_t pos = 0;
  if (c.parked) { // taken from the line: its request first
    std::unique_ptr<Ready> ready = std::move(c.parked);
    switch (finish(c, *ready, peer_done, out)) {
    case Step::answered: break;
    case Step::park: parked = true; break; // overtaken meanwhile: finish() put it back
    case Step::wait:
    case Step::close: keep = false; break;
    }
  }
  while (keep && !parked) {
    const Step step = frame_next(c, in, pos, peer_done, out);
    if (step == Step::answered) continue;
    if (step == Step::close) keep = false;
    if (step == Step::park) parked = true;
    break;
  }
  if (peer_done && !parked && !c.partial && pos == in.size()) keep = false;
  if (keep && c.request_started == Clock::time_point{} && (c.partial || pos < in.size()))
    c.request_started = Clock::now(); // part of a request is held: its clock starts
  const bool sent = send_all(c, out);
  if (!parked && (!keep || !sent)) {
    // A client still sending gets to read the answer before the connection ends.
    if (sent && !peer_done && linger(c)) return true;
    close(c);
    return false;
  }
  if (had_pending)
    c.pending.erase(0, pos);
  else if (pos < in.size())
    c.pending.assign(in, pos);
  if (c.pending.empty()) std::string().swap(c.pending);
  if (scratch.capacity() > kKeepScratch) std::string().swap(scratch);
  if (out.capacity() > kKeepScratch) std::string().swap(out);
  if (parked) {
    if (sent)
      park(c);
    else
      close(c); // the answers before the parked request did not go out: it is gone
    return false;
  }
  return true;
}

// Frames the next request from in[pos...]: answers it once whole (answered), or keeps what
// has come of it (wait), or refuses it (close).
ConnectionLoop::Step ConnectionLoop::frame_next(Connection &c, std::string &in, std::size_t &pos,
                                                bool peer_done, std::string &out) {
  const std::size_t max_body = payload_max_length_;
  if (c.partial) {
    Partial &p = *c.partial;
    const std::string_view rest = std::string_view(in).substr(pos);
    if (p.chunked) {
      std::size_t used = 0;
      const auto state = p.chunked->feed(rest, p.body, used);
      pos += used;
      if (state == ChunkedDecoder::State::refused) {
        refuse_body(c, p.chunked->status(), out);
        return Step::close;
      }
      if (state == ChunkedDecoder::State::more) {
        if (!peer_done) return Step::wait;
        refuse_body(c, 400, out);
        return Step::close;
      }
      // A trailer may end the connection (framing.h, rule 17).
      RequestHead seen;
      seen.version = p.http11 ? "HTTP/1.1" : "HTTP/1.0";
      seen.keep_alive = p.keep_alive;
      p.keep_alive = p.chunked->keep_alive(seen);
    } else {
      const std::size_t take = std::size_t(std::min<std::uint64_t>(p.need, rest.size()));
      p.body.append(rest.substr(0, take));
      p.need -= take;
      pos += take;
      if (p.need > 0) {
        if (!peer_done) return Step::wait;
        refuse_body(c, 400, out);
        return Step::close;
      }
    }
    std::unique_ptr<Partial> whole = std::move(c.partial);
    Ready ready{
        whole->head, whole->body, whole->verdict, whole->keep_alive, std::move(whole->dropped),
        {},          {}};
    return finish(c, ready, peer_done, out);
  }

  if (pos == in.size()) return Step::wait;
  const std::string_view rest = std::string_view(in).substr(pos);
  // The parser resumes where it stopped: `rest` starts at this request's first byte each time.
  HeadResult parsed = c.parser.parse(rest);
  if (parsed.state == HeadResult::State::incomplete) {
    if (!peer_done) return Step::wait;
    // The client finished in the middle of a head (empty lines before one are no request).
    if (rest.find_first_not_of("\r\n") != std::string_view::npos) refuse(c, 400, nullptr, out);
    return Step::close;
  }
  if (parsed.state == HeadResult::State::refused) {
    refuse(c, parsed.status, &parsed.head, out);
    return Step::close;
  }
  c.parser.reset();
  const std::size_t head_size = parsed.head.size;
  const RequestHead &head = parsed.head;
  if (head.target.size() + head.method.size() + head.version.size() + 4 > kHttplibLineMax) {
    refuse(c, 414, nullptr, out);
    return Step::close;
  }
  if (head.body == RequestHead::Body::length && head.content_length > max_body) {
    refuse(c, 413, &head, out); // before the body is sent (no 100 Continue), or read
    return Step::close;
  }

  // The normalised head, into this thread's buffer (or the partial request's own).
  thread_local std::string normalised;
  normalised.clear();
  std::vector<std::string> dropped;
  bool encoded = false;
  // HTTP/1.1 whatever the client spoke: keep-alive is decided here (head.keep_alive), not by
  // cpp-httplib's own reading of an HTTP/1.0 request.
  normalised.append(head.method).append(" ").append(head.target).append(" HTTP/1.1\r\n");
  for (const FieldLine &f : head.fields) {
    if (framing_field(f.name)) continue;
    if (decodes_to_control(f.value)) {
      refuse(c, 400, &head, out);
      return Step::close;
    }
    if (f.name.size() + f.value.size() + 4 > kHttplibLineMax) {
      // A credential longer than cpp-httplib reads is no credential: the application sees none
      // and answers as it answers a bad one. Any other field that long is refused.
      if (!iequals(f.name, "authorization")) {
        refuse(c, 431, &head, out);
        return Step::close;
      }
      dropped.emplace_back(f.name);
      continue;
    }
    if (iequals(f.name, "content-encoding") && !iequals(f.value, "identity")) encoded = true;
    normalised.append(f.name).append(": ").append(f.value).append("\r\n");
  }

  Verdict verdict;
  if (options_.classify) verdict = options_.classify(head.method, decoded_path(head.target));
  // No coded request bodies: cpp-httplib would inflate gzip past every size limit.
  if (encoded && verdict.refuse == 0) verdict.refuse = 415;
  if (!routable(head.method) && verdict.refuse == 0) verdict.refuse = 405;
  const bool keep_alive = head.keep_alive;
  pos += head_size;

  if (head.body == RequestHead::Body::none ||
      (head.body == RequestHead::Body::length && head.content_length <= in.size() - pos)) {
    const std::size_t length =
        head.body == RequestHead::Body::length ? std::size_t(head.content_length) : 0;
    Ready ready{normalised,
                std::string_view(in).substr(pos, length),
                verdict,
                keep_alive,
                std::move(dropped),
                {},
                {}};
    pos += length;
    return finish(c, ready, peer_done, out);
  }
  // The body is still coming: keep what the request is so far.
  auto p = std::make_unique<Partial>();
  p->head = normalised;
  p->named = routable(head.method);
  p->http11 = head.version == "HTTP/1.1";
  p->verdict = verdict;
  p->keep_alive = keep_alive;
  p->dropped = std::move(dropped);
  if (head.body == RequestHead::Body::chunked)
    p->chunked = std::make_unique<ChunkedDecoder>(max_body, kMaxTrailers);
  else
    p->need = head.content_length;
  // The client waits for "100 Continue" before sending the body.
  const bool send_continue = head.expect_continue;
  c.partial = std::move(p);
  const Step step = frame_next(c, in, pos, peer_done, out);
  if (step == Step::wait && send_continue) out += "HTTP/1.1 100 Continue\r\n\r\n";
  return step;
}

// A whole request: into its lane, and answered, parked or refused there.
ConnectionLoop::Step ConnectionLoop::finish(Connection &c, Ready &ready, bool peer_done,
                                            std::string &out) {
  Lane lane = Lane::light;
  if (ready.verdict.heavy && ready.verdict.refuse == 0) lane = admit(c, ready);
  if (lane == Lane::parked) {
    // Its bytes go with it: the buffers it views are reused meanwhile.
    auto parked = std::make_unique<Ready>(std::move(ready));
    if (parked->owned_head.empty()) {
      parked->owned_head.assign(parked->head);
      parked->owned_body.assign(parked->body);
    }
    parked->head = parked->owned_head;
    parked->body = parked->owned_body;
    c.parked = std::move(parked);
    return Step::park;
  }
  // Whatever happens in the request, its place among the heavy ones is given back.
  struct LaneGuard {
    ConnectionLoop &loop;
    Lane lane;
    ~LaneGuard() {
      if (lane == Lane::heavy) loop.finish_heavy();
    }
  } guard{*this, lane};
  const bool last =
      ++c.served >= keep_alive_max_count_ || draining_ || peer_done || !ready.keep_alive;
  c.last_active = Clock::now();
  c.request_started = {}; // the next request's clock starts with its first bytes
  if (!answer(c, ready, last, out, lane == Lane::overflow) || last) return Step::close;
  return Step::answered;
}

// Runs one whole request through cpp-httplib; false if the connection must end.
bool ConnectionLoop::answer(Connection &c, Ready &ready, bool last, std::string &out,
                            bool line_full) {
  RequestStream stream(*this, c, ready, out);
  bool closed = false;
  const bool ok = process_request(stream, last, closed, [&](httplib::Request &req) {
    if (line_full) req.headers.emplace(kLineFullField, "1");
    if (ready.verdict.refuse)
      req.headers.emplace(kRefusedField, std::to_string(ready.verdict.refuse));
    if (ready.verdict.tag >= 0) req.headers.emplace(kTagField, std::to_string(ready.verdict.tag));
    for (const auto &name : ready.dropped)
      req.headers.emplace(kDroppedField, name);
  });
  return ok && !closed && !stream.failed();
}

// Answers a request the loop will not run, through the refusal handler, in the shape of the
// route its head names if it got that far; the connection is then closed.
void ConnectionLoop::refuse(Connection &c, int status, const RequestHead *head, std::string &out) {
  thread_local std::string stand_in;
  stand_in.clear();
  Verdict verdict;
  verdict.refuse = status;
  // Only a request line read whole names a route; a broken one says nothing reliable.
  const bool named = head && routable(head->method) && !head->target.empty() &&
                     head->target.size() < kHttplibLineMax / 2 &&
                     (head->version == "HTTP/1.1" || head->version == "HTTP/1.0");
  if (named) {
    stand_in.append(head->method).append(" ").append(head->target).append(" HTTP/1.1\r\n");
    // What the answer's shape may depend on (Origin for CORS, the request id), where readable.
    for (const FieldLine &f : head->fields)
      if (!framing_field(f.name) && f.name.size() + f.value.size() + 4 <= kHttplibLineMax &&
          !decodes_to_control(f.value))
        stand_in.append(f.name).append(": ").append(f.value).append("\r\n");
  } else {
    stand_in = "GET / HTTP/1.1\r\n"; // no route: the handler answers in a neutral shape
  }
  c.partial.reset();
  Ready ready{stand_in, {}, verdict, false, {}, {}, {}};
  answer(c, ready, true, out);
}

// Refuses a request whose body did not come right, in the shape its head names.
void ConnectionLoop::refuse_body(Connection &c, int status, std::string &out) {
  std::unique_ptr<Partial> p = std::move(c.partial);
  Ready ready{p->named ? std::string_view(p->head) : std::string_view("GET / HTTP/1.1\r\n"),
              {},
              Verdict{.refuse = status},
              false,
              {},
              {},
              {}};
  answer(c, ready, true, out);
}

// A heavy request's lane: it runs if there is room and no earlier one is waiting, is parked
// if the line has room, and otherwise runs marked line_full.
ConnectionLoop::Lane ConnectionLoop::admit(Connection &c, const Ready &) {
  std::lock_guard lock(connections_mutex_);
  const bool first_in_line = c.was_parked;
  if (heavy_running_ < options_.heavy_at_once && (first_in_line || parked_.empty())) {
    c.was_parked = false;
    ++heavy_running_;
    return Lane::heavy;
  }
  if (!first_in_line && parked_.size() >= options_.heavy_queue) return Lane::overflow;
  return Lane::parked; // park() puts it in line once its connection's bytes are put away
}

// Puts c in line, after serve() has kept its unread bytes: from here another worker may take
// it. One taken from the line a moment ago and overtaken since goes back to the front.
void ConnectionLoop::park(Connection &c) {
  std::lock_guard lock(connections_mutex_);
  if (c.was_parked)
    parked_.push_front(&c);
  else
    parked_.push_back(&c);
  c.was_parked = false;
  parked_waiting_ = true;
}

void ConnectionLoop::finish_heavy() {
  std::lock_guard lock(connections_mutex_);
  --heavy_running_;
}

// The first parked connection, if a heavy request may run now.
ConnectionLoop::Connection *ConnectionLoop::take_parked() {
  std::lock_guard lock(connections_mutex_);
  if (parked_.empty() || heavy_running_ >= options_.heavy_at_once || draining_) return nullptr;
  Connection *c = parked_.front();
  parked_.pop_front();
  parked_waiting_ = !parked_.empty();
  c->was_parked = true;
  return c;
}

void ConnectionLoop::serve_parked() {
  while (Connection *c = take_parked()) {
    while (serve(*c) && release(*c)) {
    }
  }
}

bool ConnectionLoop::send_all(Connection &c, std::string &out) const {
  std::size_t off = 0;
  bool ok = true;
  while (off < out.size()) {
    short wait_for = POLLOUT;
    if (c.ssl) {
      std::size_t n = 0;
      ERR_clear_error();
      if (SSL_write_ex(c.ssl, out.data() + off, out.size() - off, &n) == 1) {
        off += n;
        continue;
      }
      const int err = SSL_get_error(c.ssl, 0);
      if (err == SSL_ERROR_WANT_READ)
        wait_for = POLLIN;
      else if (err != SSL_ERROR_WANT_WRITE) {
        ok = false;
        break;
      }
    } else {
      ssize_t n = ::send(c.fd, out.data() + off, out.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        off += std::size_t(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        ok = false;
        break;
      }
    }
    pollfd p{c.fd, wait_for, 0};
    if (::poll(&p, 1, write_timeout_ms()) > 0) continue;
    ok = false;
    break;
  }
  out.clear();
  return ok;
}

bool ConnectionLoop::release(Connection &c) {
  const auto now = Clock::now();
  const bool midway = !c.pending.empty() || c.partial;
  if (c.lingering) {
    std::lock_guard lock(connections_mutex_);
    if (c.more) {
      c.more = false;
      return true;
    }
    c.busy = false; // its deadline stays the lingering one
    return false;
  }
  // Half a request may pause for a read time-out, and take four in all.
  auto deadline = now + (midway ? read_timeout() : keep_alive_timeout());
  if (midway) deadline = std::min(deadline, c.request_started + 4 * read_timeout());
  std::lock_guard lock(connections_mutex_);
  if (draining_) {
    close_locked(c);
    return false;
  }
  c.deadline = deadline;
  if (c.more) { // an event came for it while it was busy: what it announced is not read yet
    c.more = false;
    return true;
  }
  c.busy = false;
  return false;
}

void ConnectionLoop::close(Connection &c) {
  std::lock_guard lock(connections_mutex_);
  close_locked(c);
}

void ConnectionLoop::close_locked(Connection &c) {
  const int fd = c.fd;
  if (c.ssl) {
    if (c.handshaken) SSL_shutdown(c.ssl); // close_notify, if the socket takes it now
    SSL_free(c.ssl);
    c.ssl = nullptr;
  }
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd); // under the lock, so the descriptor's slot is free before it can be reused
  if (c.counted) {
    auto it = per_address_.find(c.address_key);
    if (it != per_address_.end() && --it->second == 0) per_address_.erase(it);
  }
  connections_[std::size_t(fd)].reset();
  --open_;
  room_.notify_one();
}

void ConnectionLoop::monitor() {
  std::uint64_t seen = progress_;
  bool stuck_before = false;
  auto next_sweep = Clock::now() + kSweepEvery;
  std::unique_lock lock(monitor_mutex_);
  while (!draining_) {
    const bool all_busy = idle_ == 0;
    monitor_resting_ = !all_busy;
    monitor_wake_.wait_for(lock, all_busy
                                     ? std::chrono::duration_cast<Clock::duration>(kStuckAfter)
                                     : std::chrono::duration_cast<Clock::duration>(kSweepEvery));
    monitor_resting_ = false;
    if (draining_) break;
    // Every worker is inside a request and none has finished one since the last look: if
    // one is stuck (a hash, a commit, a slow client), ready connections would wait for it.
    // One more worker a look, so a burst of waiting handlers is met at its size. Two looks
    // in a row, so a worker briefly asleep on a lock held by one that is only waiting for a
    // core does not count. A worker hashing while every other is busy needs no second look:
    // hashes are long, and heavy requests past the running ones are parked.
    const std::uint64_t now_progress = progress_;
    const auto now = Clock::now();
    bool stuck = false;
    if (idle_ == 0 && now_progress == seen) {
      bool hashing;
      {
        std::lock_guard connections(connections_mutex_);
        hashing = heavy_running_ > 0;
      }
      std::lock_guard threads(threads_mutex_);
      join_retired_locked();
      stuck = hashing || some_worker_stuck_locked(now);
      if (stuck && (stuck_before || hashing) && alive_ < options_.max_threads) {
        start_worker_locked();
        stuck = false;
      }
    }
    stuck_before = stuck;
    seen = now_progress;
    if (now < next_sweep) continue;
    next_sweep = now + kSweepEvery;
    {
      std::lock_guard threads(threads_mutex_);
      join_retired_locked();
    }
    watch_descriptor_limit(now);
    // Past its time-out a connection with nothing under way is closed; one holding half a
    // request has its reading side shut, so that a worker sees the end of its input and
    // answers it 400, then closes it.
    std::lock_guard connections(connections_mutex_);
    // Parked requests with room to run and no worker coming back for them (the one that took
    // the last could not serve it): wake one.
    if (!parked_.empty() && heavy_running_ < options_.heavy_at_once) {
      std::uint64_t one = 1;
      if (::write(kick_fd_, &one, sizeof one) < 0) { /* the counter is full: already kicked */
      }
    }
    for (auto &c : connections_) {
      if (!c || c->busy || c->parked || c->deadline > now) continue;
      if (c->idle() || c->read_shut || (c->ssl && !c->handshaken)) {
        close_locked(*c);
      } else {
        ::shutdown(c->fd, SHUT_RD);
        c->read_shut = true;
        c->deadline = now + std::chrono::milliseconds(write_timeout_ms()) + kSweepEvery;
        // Its worker is woken by the end of input the shutdown makes (EPOLLRDHUP).
      }
    }
  }
}

// cpp-httplib's accept loop retries silently when the process is out of file descriptors
// (EMFILE), and new connections then wait unseen in the backlog. Looked at each sweep with a
// probe descriptor: said once a minute while it lasts, counted, and the connection idle
// longest is closed to let one in.
void ConnectionLoop::watch_descriptor_limit(Clock::time_point now) {
  const int probe = ::dup(epoll_fd_);
  if (probe >= 0) {
    ::close(probe);
    at_descriptor_limit_ = false;
    return;
  }
  if (errno != EMFILE && errno != ENFILE) return;
  if (!at_descriptor_limit_) ++descriptor_limit_reached_;
  at_descriptor_limit_ = true;
  if (now - descriptor_limit_said_ >= std::chrono::minutes(1)) {
    rlimit files{};
    ::getrlimit(RLIMIT_NOFILE, &files);
    std::fprintf(stderr,
                 "latch: out of file descriptors (%llu open at most: RLIMIT_NOFILE, LimitNOFILE= "
                 "in systemd): new connections wait; closing idle ones to make room\n",
                 static_cast<unsigned long long>(files.rlim_cur));
    descriptor_limit_said_ = now;
  }
  std::lock_guard lock(connections_mutex_);
  evict_idle_locked();
}

void ConnectionLoop::drain() {
  {
    std::lock_guard lock(monitor_mutex_);
    if (drained_) return;
    drained_ = true;
    draining_ = true;
  }
  std::uint64_t one = 1;
  if (::write(wake_fd_, &one, sizeof one) < 0) { /* the flag still stops each worker */
  }
  monitor_wake_.notify_all();
  room_.notify_all();
  if (monitor_.joinable()) monitor_.join();
  {
    std::lock_guard lock(connections_mutex_);
    for (auto &c : connections_)
      if (c && !c->busy && !c->parked) close_locked(*c);
  }
  std::vector<std::unique_ptr<Worker>> workers;
  {
    std::lock_guard lock(threads_mutex_);
    workers.swap(workers_);
  }
  for (auto &w : workers)
    if (w->thread.joinable()) w->thread.join(); // a busy one finishes its request first
  std::lock_guard lock(connections_mutex_);
  for (Connection *c : parked_)
    close_locked(*c); // a sign-in that never started: its client gets no answer, as at a stop
  parked_.clear();
  parked_waiting_ = false;
}

ConnectionLoop::Stats ConnectionLoop::stats() const {
  Stats s;
  {
    std::lock_guard lock(connections_mutex_);
    s.connections = open_;
    s.heavy_running = heavy_running_;
    s.heavy_parked = parked_.size();
    s.refused_per_address = refused_per_address_;
    s.evicted_idle = evicted_idle_;
    s.descriptor_limit_reached = descriptor_limit_reached_;
  }
  std::lock_guard lock(threads_mutex_);
  s.threads = alive_;
  s.peak_threads = peak_;
  return s;
}

} // namespace latch::http
