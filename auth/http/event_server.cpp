// Plain-HTTP connections served from epoll: the connection loop under cpp-httplib's request
// handling (event_server.h says how it is shared out).
#include "auth/http/event_server.h"

#include "auth/wait_hint.h"

#include <malloc.h>
#include <netdb.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string_view>

namespace latch::http {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::uint64_t kWakeToken = ~std::uint64_t{0};
constexpr std::uint64_t kKickToken = ~std::uint64_t{0} - 1; // parked requests have room
constexpr std::size_t kReadStep = 16 * 1024;                // one recv
constexpr std::size_t kMaxHead = 64 * 1024;                 // request line and headers
constexpr std::size_t kFlushAt = 256 * 1024;     // a response is sent in pieces past this
constexpr std::size_t kKeepScratch = 256 * 1024; // per-thread buffers shrink back past this
constexpr int kRetireAfterMs = 10'000;           // a spare worker idle this long exits
constexpr auto kSweepEvery = 250ms;              // time-outs are this precise
constexpr auto kStuckAfter = 5ms;                // every worker busy, none done: start one
constexpr auto kQueueGrace = 100ms;              // in line for a hash slot this long: stuck

// cpp-httplib runs the connection loop through its task queue; here accepting a connection
// only registers it, which the accepting thread does itself.
class InlineQueue : public httplib::TaskQueue {
public:
  void enqueue(std::function<void()> job) override { job(); }
  void shutdown() override {}
};

// The numeric address and port of a socket's peer (or, `local`, its own end), as cpp-httplib
// reports them in Request::remote_addr and local_addr.
void socket_address(int fd, bool local, std::string &ip, int &port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  auto *sa = reinterpret_cast<sockaddr *>(&addr);
  if ((local ? ::getsockname(fd, sa, &len) : ::getpeername(fd, sa, &len)) != 0) return;
  if (addr.ss_family == AF_INET)
    port = ntohs(reinterpret_cast<sockaddr_in *>(&addr)->sin_port);
  else if (addr.ss_family == AF_INET6)
    port = ntohs(reinterpret_cast<sockaddr_in6 *>(&addr)->sin6_port);
  std::array<char, NI_MAXHOST> host{};
  if (::getnameinfo(sa, len, host.data(), socklen_t(host.size()), nullptr, 0, NI_NUMERICHOST) == 0)
    ip = host.data();
}

int to_ms(time_t sec, time_t usec) {
  return int(sec * 1000 + usec / 1000);
}

} // namespace

struct EventServer::Worker {
  std::thread thread;
  std::atomic<pid_t> tid = 0;
  std::atomic<Clock::rep> busy_since = 0; // when it took its connection; 0 while idle
  WaitHint::Slot hint;                    // what its handler said it waits on
  bool retired = false;                   // it has left work(): join it
};

struct EventServer::Connection {
  int fd = -1;
  std::uint32_t id = 0;    // tells this connection from a later one given the same descriptor
  bool busy = false;       // a worker has it; otherwise it waits in the epoll set
  bool more = false;       // bytes came (or may be unread) while busy: serve it again
  bool hangup = false;     // the client has closed its side (or the socket failed): read to the end
  bool read_shut = false;  // timed out holding half a request: its reading side is shut
  bool was_parked = false; // just taken from parked_ (a whole heavy request): it goes first
  Clock::time_point deadline;
  std::string pending; // the start of a request not yet whole
  std::size_t served = 0;
  std::string remote_ip, local_ip;
  int remote_port = 0, local_port = 0;

  std::uint64_t token() const { return std::uint64_t(id) << 32 | std::uint32_t(fd); }
};

// One request for process_request: its bytes from memory, the response into a buffer sent
// when the request is done. A request framing.h could not frame exactly may read on from the
// socket, waiting up to the read time-out (after sending what is buffered: a "100 Continue").
class EventServer::RequestStream : public httplib::Stream {
public:
  RequestStream(const EventServer &server, const Connection &c, std::string &in, std::size_t begin,
                const Frame &frame, std::string &out)
      : server_(server), c_(c), in_(in), out_(out), pos_(begin),
        end_(frame.kind == Frame::Kind::exact ? begin + frame.length : in.size()),
        from_socket_(frame.kind == Frame::Kind::open) {}

  bool is_readable() const override { return pos_ < end_ || from_socket_; }
  bool is_writable() const override { return !failed_; }

  // A read that times out or fails ends the request's input, not the connection: the parser
  // still answers (400, or 413 after skipping a body too large), as it does on a socket.
  ssize_t read(char *ptr, size_t size) override {
    if (pos_ == end_ && !(from_socket_ && receive())) return read_failed_ ? -1 : 0;
    if (size == 1) { // cpp-httplib reads the request line and headers a byte a call
      *ptr = in_[pos_++];
      return 1;
    }
    std::size_t n = std::min(size, end_ - pos_);
    std::memcpy(ptr, in_.data() + pos_, n);
    pos_ += n;
    return ssize_t(n);
  }

  ssize_t write(const char *ptr, size_t size) override {
    if (failed_) return -1;
    out_.append(ptr, size);
    if (out_.size() >= kFlushAt && !server_.send_all(c_.fd, out_)) failed_ = true;
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

  std::size_t position() const { return pos_; }
  bool failed() const { return failed_; }

private:
  // More bytes from the socket onto the input; false at its end, an error or the time-out.
  bool receive() {
    if (!out_.empty() && !server_.send_all(c_.fd, out_)) {
      failed_ = true;
      return read_fail();
    }
    const int timeout = to_ms(server_.read_timeout_sec_, server_.read_timeout_usec_);
    for (;;) {
      pollfd p{c_.fd, POLLIN, 0};
      int ready = ::poll(&p, 1, timeout);
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return read_fail();
      char chunk[kReadStep];
      ssize_t n = ::recv(c_.fd, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n > 0) {
        in_.append(chunk, std::size_t(n));
        end_ = in_.size();
        return true;
      }
      if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      if (n < 0) return read_fail();
      from_socket_ = false; // the client has finished sending
      return false;
    }
  }
  bool read_fail() {
    read_failed_ = true;
    from_socket_ = false;
    return false;
  }

  const EventServer &server_;
  const Connection &c_;
  std::string &in_, &out_;
  std::size_t pos_, end_;
  bool from_socket_;
  bool read_failed_ = false;
  bool failed_ = false; // a send failed: the connection is gone
};

EventServer::EventServer(Options options) : options_(options) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_fd_ < 0 || wake_fd_ < 0)
    throw std::runtime_error(std::string("cannot set up epoll: ") + std::strerror(errno));
  epoll_event wake{};
  wake.events = EPOLLIN; // level-triggered and never read: once written, wakes every worker
  wake.data.u64 = kWakeToken;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &wake);
  kick_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (kick_fd_ < 0)
    throw std::runtime_error(std::string("cannot set up epoll: ") + std::strerror(errno));
  epoll_event kick{};
  kick.events = EPOLLIN | EPOLLET; // one worker a write
  kick.data.u64 = kKickToken;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, kick_fd_, &kick);
  new_task_queue = [] { return new InlineQueue; };
  {
    std::lock_guard lock(threads_mutex_);
    for (std::size_t i = 0; i < std::max<std::size_t>(options_.threads, 1); ++i)
      start_worker_locked();
  }
  monitor_ = std::thread([this] { monitor(); });
}

EventServer::~EventServer() {
  drain();
  ::close(kick_fd_);
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

std::chrono::steady_clock::duration EventServer::keep_alive_timeout() const {
  return std::chrono::seconds(keep_alive_timeout_sec_);
}

std::chrono::steady_clock::duration EventServer::read_timeout() const {
  return std::chrono::milliseconds(to_ms(read_timeout_sec_, read_timeout_usec_));
}

int EventServer::write_timeout_ms() const {
  return to_ms(write_timeout_sec_, write_timeout_usec_);
}

bool EventServer::process_and_close_socket(socket_t sock) {
  {
    std::unique_lock lock(connections_mutex_);
    while (open_ >= options_.max_connections && !draining_ && svr_sock_ != INVALID_SOCKET)
      room_.wait_for(lock, 100ms);
    if (draining_ || svr_sock_ == INVALID_SOCKET) {
      ::close(sock);
      return false;
    }
  }
  auto c = std::make_unique<Connection>();
  c->fd = sock;
  socket_address(sock, false, c->remote_ip, c->remote_port);
  socket_address(sock, true, c->local_ip, c->local_port);
  std::lock_guard lock(connections_mutex_);
  if (std::size_t(sock) >= connections_.size())
    connections_.resize(std::max<std::size_t>(std::size_t(sock) + 1, connections_.size() * 2));
  c->id = ++next_id_;
  c->deadline = Clock::now() + read_timeout();
  epoll_event ev{};
  // Edge-triggered: one event each time bytes arrive, to whichever worker waits, and nothing
  // to re-arm after each request (one system call fewer a request).
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = c->token();
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, sock, &ev) != 0) {
    ::close(sock);
    return false;
  }
  connections_[std::size_t(sock)] = std::move(c);
  ++open_;
  return true;
}

void EventServer::start_worker_locked() {
  ++alive_;
  peak_ = std::max(peak_, alive_);
  auto &w = *workers_.emplace_back(std::make_unique<Worker>());
  w.thread = std::thread([this, &w] { work(w); });
}

void EventServer::join_retired_locked() {
  std::erase_if(workers_, [](const std::unique_ptr<Worker> &w) {
    if (!w->retired) return false;
    w->thread.join(); // it has left work(): this returns at once
    return true;
  });
}

// Whether another worker would help: a busy one is asleep in the kernel (a lock, a
// condition, a socket: Linux's thread state S or D), or has been on one request for 20 ms.
// Not stuck: workers only waiting for a core (state R, a short request), and one in line for
// a hashing slot (auth/wait_hint.h) while the line moves, that is for its first 100 ms; while
// one is in line, long requests (the hashes it waits for) start no one either. Past 100 ms in
// line, hashing is saturated: more workers let the next sign-ins find the line full and be
// answered 503 at once, as --hash-queue says, instead of waiting unseen for a worker.
bool EventServer::some_worker_stuck_locked(Clock::time_point now) const {
  auto queued = [](const Worker &w) {
    return w.busy_since != 0 && w.hint.kind == WaitHint::queued;
  };
  auto queued_for = [&](const Worker &w) {
    return now - Clock::time_point(Clock::duration(w.hint.since.load()));
  };
  const bool someone_queues =
      std::any_of(workers_.begin(), workers_.end(), [&](const auto &w) { return queued(*w); });
  for (const auto &w : workers_) {
    const Clock::rep since = w->busy_since;
    if (since == 0 || w->retired) continue;
    if (queued(*w)) {
      if (queued_for(*w) >= kQueueGrace) return true;
      continue;
    }
    if (!someone_queues && now - Clock::time_point(Clock::duration(since)) >= 4 * kStuckAfter)
      return true;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", int(w->tid));
    FILE *f = std::fopen(path, "re");
    if (!f) continue;
    char line[512];
    const bool got = std::fgets(line, sizeof line, f) != nullptr;
    std::fclose(f);
    const char *after_name = got ? std::strrchr(line, ')') : nullptr; // "tid (comm) S ..."
    if (after_name && (after_name[2] == 'S' || after_name[2] == 'D')) return true;
  }
  return false;
}

void EventServer::work(Worker &self) {
  self.tid = pid_t(::gettid());
  WaitHint::slot = &self.hint;
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

bool EventServer::retire_if_spare(Worker &self, bool load_over) {
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

EventServer::Connection *EventServer::claim(std::uint64_t token, std::uint32_t events) {
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

bool EventServer::serve(Connection &c) {
  // The input is the connection's own buffer only while it holds half a request; otherwise
  // it is this thread's, so a whole request arriving at once is never copied or allocated.
  thread_local std::string scratch, out;
  const bool had_pending = !c.pending.empty();
  std::string &in = had_pending ? c.pending : scratch;
  if (!had_pending) scratch.clear();
  const FrameLimits limits{kMaxHead, payload_max_length_};
  bool hangup;
  {
    std::lock_guard lock(connections_mutex_);
    hangup = c.hangup;
  }

  bool peer_done = false;
  for (;;) {
    if (in.size() >= limits.max_head + limits.max_body + kReadStep) {
      std::lock_guard lock(connections_mutex_);
      c.more = true; // enough for any request; the rest waits in the socket, without an event
      break;
    }
    char chunk[kReadStep];
    ssize_t n = ::recv(c.fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n > 0) {
      in.append(chunk, std::size_t(n));
      if (std::size_t(n) < sizeof chunk && !hangup) break; // the rest has not arrived
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    peer_done = true; // closed, or reset
    break;
  }

  // Answer every whole request in order; the last one allowed, or one the client or the
  // parser ends the connection with, ends the loop.
  bool keep = !peer_done, parked = false;
  std::size_t pos = 0;
  out.clear();
  while (pos < in.size()) {
    Frame frame = frame_request(std::string_view(in).substr(pos), limits);
    // Half a request from a client that has stopped sending (it closed its side, or the
    // read time-out shut ours): the parser gets what came, and answers 400.
    if (frame.kind == Frame::Kind::incomplete && !peer_done) break;
    if (frame.kind == Frame::Kind::incomplete) frame = {Frame::Kind::truncated, in.size() - pos};
    const Lane lane = frame.kind == Frame::Kind::exact && options_.heavy
                          ? admit(c, std::string_view(in).substr(pos, frame.length))
                          : Lane::light;
    if (lane == Lane::parked) {
      parked = true;
      break;
    }
    // Whatever happens in the request, its place among the heavy ones is given back, and a
    // request past the line is refused a wait, not this thread's next one.
    struct LaneGuard {
      EventServer &server;
      Lane lane;
      ~LaneGuard() {
        if (lane == Lane::heavy) server.finish_heavy();
        if (lane == Lane::overflow) WaitHint::slot->no_queue = false;
      }
    } guard{*this, lane};
    if (lane == Lane::overflow) WaitHint::slot->no_queue = true;
    const bool last = ++c.served >= keep_alive_max_count_ || draining_ || peer_done;
    RequestStream stream(*this, c, in, pos, frame, out);
    bool closed = false;
    const bool ok = process_request(stream, last, closed, nullptr);
    // An exact frame's whole body is spent even where cpp-httplib reads none of it (a GET).
    pos = frame.kind == Frame::Kind::exact ? pos + frame.length : stream.position();
    if (!ok || closed || last || stream.failed() || frame.kind == Frame::Kind::truncated) {
      keep = false;
      break;
    }
  }
  const bool sent = send_all(c.fd, out);
  if (!parked && (!keep || !sent)) {
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

// A request's lane, from its method and path: light requests run at once; a heavy one runs
// if there is room and no earlier one is waiting, is parked (c stays busy, holding its bytes)
// if the line has room, and otherwise runs refused a place in the hasher's line.
EventServer::Lane EventServer::admit(Connection &c, std::string_view request) {
  const auto method_end = request.find(' ');
  if (method_end == std::string_view::npos) return Lane::light;
  const auto target = request.substr(method_end + 1);
  const auto path_end = target.find_first_of(" ?");
  if (path_end == std::string_view::npos) return Lane::light;
  if (!options_.heavy(request.substr(0, method_end), target.substr(0, path_end)))
    return Lane::light;
  std::lock_guard lock(connections_mutex_);
  const bool first_in_line = c.was_parked;
  if (heavy_running_ < options_.heavy_at_once && (first_in_line || parked_.empty())) {
    c.was_parked = false;
    ++heavy_running_;
    return Lane::heavy;
  }
  if (!first_in_line && parked_.size() >= options_.heavy_queue) return Lane::overflow;
  return Lane::parked; // park() puts it in line once its bytes are put away
}

// Puts c in line, after serve() has kept its unread bytes: from here another worker may take
// it. One taken from the line a moment ago and overtaken since goes back to the front.
void EventServer::park(Connection &c) {
  std::lock_guard lock(connections_mutex_);
  if (c.was_parked)
    parked_.push_front(&c);
  else
    parked_.push_back(&c);
  c.was_parked = false;
  parked_waiting_ = true;
}

void EventServer::finish_heavy() {
  std::lock_guard lock(connections_mutex_);
  --heavy_running_;
}

// The first parked connection, if a heavy request may run now.
EventServer::Connection *EventServer::take_parked() {
  std::lock_guard lock(connections_mutex_);
  if (parked_.empty() || heavy_running_ >= options_.heavy_at_once || draining_) return nullptr;
  Connection *c = parked_.front();
  parked_.pop_front();
  parked_waiting_ = !parked_.empty();
  c->was_parked = true;
  return c;
}

void EventServer::serve_parked() {
  while (Connection *c = take_parked()) {
    while (serve(*c) && release(*c)) {
    }
  }
}

bool EventServer::send_all(int fd, std::string &out) const {
  std::size_t off = 0;
  bool ok = true;
  while (off < out.size()) {
    ssize_t n = ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += std::size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, write_timeout_ms()) > 0) continue;
    }
    ok = false;
    break;
  }
  out.clear();
  return ok;
}

bool EventServer::release(Connection &c) {
  const auto deadline = Clock::now() + (c.pending.empty() ? keep_alive_timeout() : read_timeout());
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

void EventServer::close(Connection &c) {
  std::lock_guard lock(connections_mutex_);
  close_locked(c);
}

void EventServer::close_locked(Connection &c) {
  const int fd = c.fd;
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd); // under the lock, so the descriptor's slot is free before it can be reused
  connections_[std::size_t(fd)].reset();
  --open_;
  room_.notify_one();
}

void EventServer::monitor() {
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
    // core does not count.
    // A worker hashing while every other is busy needs no second look: hashes are long, and
    // heavy requests past the running ones are parked, so a new worker serves the others.
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
    // Past its time-out a connection with nothing pending is closed; one holding half a
    // request has its reading side shut, so that a worker sees the end of its input and
    // answers it as cpp-httplib does at a read time-out (400), then closes it.
    std::lock_guard connections(connections_mutex_);
    // Parked requests with room to run and no worker coming back for them (the one that took
    // the last could not serve it): wake one.
    if (!parked_.empty() && heavy_running_ < options_.heavy_at_once) {
      std::uint64_t one = 1;
      if (::write(kick_fd_, &one, sizeof one) < 0) { /* the counter is full: already kicked */
      }
    }
    for (auto &c : connections_) {
      if (!c || c->busy || c->deadline > now) continue;
      if (c->pending.empty() || c->read_shut) {
        close_locked(*c);
      } else {
        ::shutdown(c->fd, SHUT_RD);
        c->read_shut = true;
        c->deadline = now + std::chrono::milliseconds(write_timeout_ms()) + kSweepEvery;
      }
    }
  }
}

void EventServer::drain() {
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
      if (c && !c->busy) close_locked(*c);
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

EventServer::Stats EventServer::stats() const {
  Stats s;
  {
    std::lock_guard lock(connections_mutex_);
    s.connections = open_;
    s.heavy_running = heavy_running_;
    s.heavy_parked = parked_.size();
  }
  std::lock_guard lock(threads_mutex_);
  s.threads = alive_;
  s.peak_threads = peak_;
  return s;
}

} // namespace latch::http
