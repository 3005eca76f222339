// Mail delivery: the outbox's sender, in front of libcurl's SMTP client or the log.
#include "auth/mail.h"

#include "auth/secure.h"

#include <curl/curl.h> // types and constants only: libcurl itself is loaded with dlopen
#include <dlfcn.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace latch {

Mailer::Mailer(db::Outbox &outbox, Transport transport, MailPolicy policy, Clock clock)
    : outbox_(outbox), transport_(std::move(transport)), policy_(policy), clock_(std::move(clock)) {
}

Mailer::~Mailer() {
  stop();
}

void Mailer::start() {
  std::lock_guard lock(stop_mutex_);
  if (!worker_.joinable()) worker_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

void Mailer::wake() {
  {
    std::lock_guard lock(mutex_);
    woken_ = true;
  }
  changed_.notify_all();
}

void Mailer::stop() {
  std::lock_guard lock(stop_mutex_);
  if (!worker_.joinable()) return;
  worker_.request_stop(); // wakes the wait below and aborts the transport's exchange
  worker_.join();
}

Mailer::Counts Mailer::counts() const {
  return {queued_.load(), sent_.load(), failed_.load(), dropped_.load()};
}

std::int64_t Mailer::backoff(const MailPolicy &policy, int attempt) {
  std::int64_t wait = std::max<std::int64_t>(1, policy.retry);
  for (int i = 1; i < attempt && wait < policy.retry_max; ++i)
    wait *= 2;
  return std::min(wait, std::max<std::int64_t>(1, policy.retry_max));
}

std::string mail_domain(const std::string &address) {
  const std::size_t at = address.rfind('@');
  return at == std::string::npos ? std::string("(no domain)") : address.substr(at + 1);
}

void Mailer::run(const std::stop_token &stop) {
  while (!stop.stop_requested()) {
    send_due(stop);
    std::unique_lock lock(mutex_);
    // This process's mail wakes it at once; another process's, or a retry that fell due, is
    // found within a second.
    changed_.wait_for(lock, stop, std::chrono::seconds(1), [this] { return woken_; });
    woken_ = false;
  }
}

int Mailer::send_due() {
  return send_due(std::stop_token());
}

int Mailer::send_due(const std::stop_token &stop) {
  int handled = 0;
  try {
    for (const db::QueuedMail &m : outbox_.drop_undeliverable(clock_())) {
      dropped(m, clock_());
      ++handled;
    }
    // A claim outlives any exchange it covers: curl gives up after policy_.timeout.
    const std::int64_t lease = policy_.timeout + 30;
    while (!stop.stop_requested()) {
      // The link's token is made here, for this attempt: the outbox holds none (db::OutgoingMail).
      const std::string token = secure::random_token(32); // 256 bits
      auto mail = outbox_.take_mail(clock_(), lease, secure::sha256_hex(token));
      if (!mail) break;
      ++handled;
      const bool went_on = deliver(*mail, token, stop);
      queued_ = outbox_.mail_counts(clock_()).queued;
      if (!went_on) break;
    }
    queued_ = outbox_.mail_counts(clock_()).queued;
    last_database_error_.clear();
  } catch (const std::exception &e) {
    database_error(e);
  }
  return handled;
}

void Mailer::database_error(const std::exception &e) {
  // The sender looks every second: a database that stays broken is said once, not each time.
  if (last_database_error_ == e.what()) return;
  last_database_error_ = e.what();
  std::cerr << "latch: mail: database error: " << e.what()
            << " (mail waits in the outbox; tried again every second)\n";
}

void Mailer::dropped(const db::QueuedMail &m, std::int64_t now) {
  ++dropped_;
  const bool expired = m.mail.link_expires_at && *m.mail.link_expires_at <= now;
  std::cerr << "latch: mail " << m.id << " to " << mail_domain(m.mail.recipient)
            << " dropped unsent: "
            << (expired ? "its link expired while it waited"
                        : "its link no longer works (used, or its account deleted)")
            << "\n";
}

bool Mailer::deliver(const db::QueuedMail &m, const std::string &token,
                     const std::stop_token &stop) {
  const std::string domain = mail_domain(m.mail.recipient);
  if (!m.link_live) { // expired between the drop above and the claim
    outbox_.drop_mail(m.id);
    dropped(m, clock_());
    return true;
  }
  Mail mail{m.mail.recipient, m.mail.subject, m.mail.body};
  if (m.mail.token_hash) {
    if (m.mail.token_at > mail.body.size()) { // only a hand-edited row: never send it wrong
      if (outbox_.mail_failed(m.id, m.attempts, "token_at is past the body", clock_())) ++failed_;
      std::cerr << "latch: mail " << m.id << " to " << domain
                << " failed permanently: its row is malformed (token_at)\n";
      return true;
    }
    mail.body.insert(m.mail.token_at, token);
  }
  const Delivery d = transport_(mail, stop);
  const std::int64_t now = clock_();
  switch (d.outcome) {
  case Delivery::Outcome::sent:
    outbox_.mail_sent(m.id); // and its body, which holds the link, with it
    ++sent_;
    return true;
  case Delivery::Outcome::abandoned: outbox_.release_mail(m.id, m.attempts); return false;
  case Delivery::Outcome::permanent:
    if (outbox_.mail_failed(m.id, m.attempts, d.reason, now)) ++failed_;
    std::cerr << "latch: mail to " << domain << " failed permanently: " << d.reason << " (mail "
              << m.id << "; `latch mail retry " << m.id << "` sends it again)\n";
    return true;
  case Delivery::Outcome::temporary: break;
  }
  const std::int64_t wait = backoff(policy_, m.attempts);
  if (now + wait > m.queued_at + policy_.give_up) {
    const std::string reason = "no delivery in " + std::to_string(now - m.queued_at) + " s, " +
                               std::to_string(m.attempts) + " attempts (last: " + d.reason + ")";
    if (outbox_.mail_failed(m.id, m.attempts, reason, now)) ++failed_;
    std::cerr << "latch: mail to " << domain << " failed permanently: " << reason << " (mail "
              << m.id << "; `latch mail retry " << m.id << "` sends it again)\n";
    return true;
  }
  outbox_.mail_deferred(m.id, m.attempts, now + wait, d.reason, now);
  std::cerr << "latch: mail " << m.id << " to " << domain << " not sent: " << d.reason
            << "; next attempt in " << wait << " s\n";
  return true;
}

std::string format_message(const Mail &mail, const std::string &from) {
  char date[64];
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  std::string domain = from.substr(from.find('@') == std::string::npos ? 0 : from.find('@') + 1);
  std::string msg;
  msg += "Date: " + std::string(date) + "\r\n";
  msg += "From: " + from + "\r\n";
  msg += "To: " + mail.to + "\r\n";
  msg += "Subject: " + mail.subject + "\r\n";
  msg += "Message-ID: <" + secure::random_token(16) + "@" + domain + ">\r\n";
  msg += "MIME-Version: 1.0\r\n";
  msg += "Content-Type: text/plain; charset=utf-8\r\n";
  msg += "Content-Transfer-Encoding: 8bit\r\n\r\n";
  // SMTP lines end in CRLF; a lone "." line would end the message early, so dot-stuff it.
  size_t start = 0;
  while (start <= mail.body.size()) {
    size_t nl = mail.body.find('\n', start);
    std::string line =
        mail.body.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty() && line[0] == '.') line.insert(0, ".");
    msg += line + "\r\n";
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return msg;
}

namespace {

struct Upload {
  std::string data;
  size_t offset = 0;
};

size_t read_upload(char *buffer, size_t size, size_t nitems, void *userp) {
  auto *u = static_cast<Upload *>(userp);
  size_t n = std::min(size * nitems, u->data.size() - u->offset);
  std::memcpy(buffer, u->data.data() + u->offset, n);
  u->offset += n;
  return n;
}

// libcurl is not linked but opened when SMTP is configured: its dependencies (GnuTLS, Kerberos,
// LDAP, libssh2, p11-kit...) would otherwise be mapped, and some initialised, in every server,
// about 3 MB of an idle one's memory. Opened once, never closed. The multi interface, for one
// transfer at a time: its poll can be woken from another thread, so a stopping server abandons
// an exchange at once instead of waiting out a hung SMTP server.
struct Curl {
  decltype(&curl_global_init) global_init = nullptr;
  decltype(&curl_easy_init) easy_init = nullptr;
  decltype(&curl_easy_setopt) easy_setopt = nullptr;
  decltype(&curl_easy_getinfo) easy_getinfo = nullptr;
  decltype(&curl_easy_strerror) easy_strerror = nullptr;
  decltype(&curl_easy_cleanup) easy_cleanup = nullptr;
  decltype(&curl_multi_init) multi_init = nullptr;
  decltype(&curl_multi_add_handle) multi_add_handle = nullptr;
  decltype(&curl_multi_remove_handle) multi_remove_handle = nullptr;
  decltype(&curl_multi_perform) multi_perform = nullptr;
  decltype(&curl_multi_poll) multi_poll = nullptr;
  decltype(&curl_multi_wakeup) multi_wakeup = nullptr;
  decltype(&curl_multi_info_read) multi_info_read = nullptr;
  decltype(&curl_multi_cleanup) multi_cleanup = nullptr;
  decltype(&curl_slist_append) slist_append = nullptr;
  decltype(&curl_slist_free_all) slist_free_all = nullptr;
};

constexpr const char *kCurlLibrary = "libcurl.so.4";

// The loaded library, or an exception saying why it cannot be used.
const Curl &curl_library() {
  static const Curl curl = [] {
    void *lib = dlopen(kCurlLibrary, RTLD_NOW | RTLD_LOCAL);
    if (!lib)
      throw std::runtime_error(std::string("SMTP needs libcurl (Debian package libcurl4): ") +
                               dlerror());
    auto symbol = [lib](auto &fn, const char *name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      if (!fn) throw std::runtime_error(std::string(kCurlLibrary) + " has no " + name);
    };
    Curl c;
    symbol(c.global_init, "curl_global_init");
    symbol(c.easy_init, "curl_easy_init");
    symbol(c.easy_setopt, "curl_easy_setopt");
    symbol(c.easy_getinfo, "curl_easy_getinfo");
    symbol(c.easy_strerror, "curl_easy_strerror");
    symbol(c.easy_cleanup, "curl_easy_cleanup");
    symbol(c.multi_init, "curl_multi_init");
    symbol(c.multi_add_handle, "curl_multi_add_handle");
    symbol(c.multi_remove_handle, "curl_multi_remove_handle");
    symbol(c.multi_perform, "curl_multi_perform");
    symbol(c.multi_poll, "curl_multi_poll");     // libcurl 7.66
    symbol(c.multi_wakeup, "curl_multi_wakeup"); // libcurl 7.68
    symbol(c.multi_info_read, "curl_multi_info_read");
    symbol(c.multi_cleanup, "curl_multi_cleanup");
    symbol(c.slist_append, "curl_slist_append");
    symbol(c.slist_free_all, "curl_slist_free_all");
    // Not thread-safe: this runs at start-up, before the server's threads exist.
    if (c.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      throw std::runtime_error("SMTP: libcurl failed to initialise");
    return c;
  }();
  return curl;
}

// What an attempt's outcome means: the SMTP reply code decides (RFC 5321 4.2.1: 4yz transient,
// 5yz permanent); without one (no connection, a time-out, TLS) the failure is temporary.
Delivery classify(const Curl &c, CURLcode rc, long code) {
  if (rc == CURLE_OK) return {Delivery::Outcome::sent, static_cast<int>(code), ""};
  const int smtp = static_cast<int>(code);
  if (smtp >= 500 && smtp < 600)
    return {Delivery::Outcome::permanent, smtp, "SMTP " + std::to_string(smtp)};
  if (smtp >= 400 && smtp < 500)
    return {Delivery::Outcome::temporary, smtp, "SMTP " + std::to_string(smtp)};
  // libcurl's own words for the failure: fixed texts, never an address or the mail.
  return {Delivery::Outcome::temporary, smtp, c.easy_strerror(rc)};
}

// The sockets of one transfer, opened and closed through these callbacks: stopping shuts them
// down, as libcurl, handed back a transfer cut short, would otherwise wait for the server to
// answer the end of the mail (or QUIT) for up to its time-out.
struct Sockets {
  std::vector<curl_socket_t> open;
};

curl_socket_t open_socket(void *clientp, curlsocktype, struct curl_sockaddr *address) {
  const curl_socket_t fd =
      ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  if (fd != CURL_SOCKET_BAD) static_cast<Sockets *>(clientp)->open.push_back(fd);
  return fd;
}

int close_socket(void *clientp, curl_socket_t fd) {
  auto &open = static_cast<Sockets *>(clientp)->open;
  open.erase(std::remove(open.begin(), open.end(), fd), open.end());
  return ::close(fd);
}

// Runs one transfer to its end, or until stop is requested (then nullopt). The handle's
// sockets are opened through open_socket into sockets.
std::optional<CURLcode> perform(const Curl &c, CURL *curl, const Sockets &sockets,
                                const std::stop_token &stop) {
  CURLM *multi = c.multi_init();
  if (!multi) return CURLE_OUT_OF_MEMORY;
  c.multi_add_handle(multi, curl);
  std::optional<CURLcode> result;
  {
    std::stop_callback wake(stop, [&] { c.multi_wakeup(multi); });
    while (!result && !stop.stop_requested()) {
      int running = 0;
      if (c.multi_perform(multi, &running) != CURLM_OK) {
        result = CURLE_FAILED_INIT;
        break;
      }
      int left = 0;
      while (CURLMsg *msg = c.multi_info_read(multi, &left))
        if (msg->msg == CURLMSG_DONE) result = msg->data.result;
      // Waits for the socket, libcurl's next time-out, or a wake-up; at most a second.
      if (!result) c.multi_poll(multi, nullptr, 0, 1000, nullptr);
    }
  } // the callback is gone before the handle it wakes
  // Abandoned: a server that does not answer is not waited for. Only this thread closes them.
  if (!result)
    for (curl_socket_t fd : sockets.open)
      ::shutdown(fd, SHUT_RDWR);
  c.multi_remove_handle(multi, curl);
  c.multi_cleanup(multi);
  return result;
}

} // namespace

Mailer::Transport Mailer::smtp(SmtpSettings s) {
  const Curl &c = curl_library(); // throws now, at start-up, rather than at the first mail
  return [s, &c](const Mail &mail, std::stop_token stop) -> Delivery {
    CURL *curl = c.easy_init();
    if (!curl) return {Delivery::Outcome::temporary, 0, "libcurl: out of memory"};
    Upload upload{format_message(mail, s.from), 0};
    Sockets sockets;
    struct curl_slist *rcpt = c.slist_append(nullptr, ("<" + mail.to + ">").c_str());
    std::string from = "<" + s.from + ">";
    c.easy_setopt(curl, CURLOPT_URL, s.url.c_str());
    c.easy_setopt(curl, CURLOPT_MAIL_FROM, from.c_str());
    c.easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
    c.easy_setopt(curl, CURLOPT_READFUNCTION, read_upload);
    c.easy_setopt(curl, CURLOPT_READDATA, &upload);
    c.easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    c.easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    c.easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    c.easy_setopt(curl, CURLOPT_OPENSOCKETDATA, &sockets);
    c.easy_setopt(curl, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
    c.easy_setopt(curl, CURLOPT_CLOSESOCKETDATA, &sockets);
    c.easy_setopt(curl, CURLOPT_FORBID_REUSE, 1L); // closed before sockets goes
    // One mail never holds the sender longer than this, a hung server included.
    c.easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, static_cast<long>(s.timeout));
    c.easy_setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(s.timeout));
    // smtp:// upgrades with STARTTLS when the server offers it, and insists on it when we
    // would otherwise send a password in the clear; smtps:// is TLS from the start.
    c.easy_setopt(curl, CURLOPT_USE_SSL,
                  s.user.empty() ? static_cast<long>(CURLUSESSL_TRY)
                                 : static_cast<long>(CURLUSESSL_ALL));
    if (!s.user.empty()) {
      c.easy_setopt(curl, CURLOPT_USERNAME, s.user.c_str());
      c.easy_setopt(curl, CURLOPT_PASSWORD, s.password.c_str());
    }
    std::optional<CURLcode> rc = perform(c, curl, sockets, stop);
    long code = 0;
    c.easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    c.slist_free_all(rcpt);
    c.easy_cleanup(curl);
    if (!rc) return {Delivery::Outcome::abandoned, 0, "the server is stopping"};
    return classify(c, *rc, code);
  };
}

Mailer::Transport Mailer::log() {
  return [](const Mail &mail, std::stop_token) {
    // No SMTP configured (local development): the mail goes to the log instead.
    std::cerr << "latch: mail (LATCH_SMTP_URL unset, not sent)\n  To: " << mail.to
              << "\n  Subject: " << mail.subject << "\n  " << mail.body << "\n";
    return Delivery{Delivery::Outcome::sent, 0, ""};
  };
}

} // namespace latch
