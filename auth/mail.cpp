// Mail delivery: an async queue in front of libcurl's SMTP client or the log.
#include "auth/mail.h"

#include "auth/secure.h"

#include <curl/curl.h> // types and constants only: libcurl itself is loaded with dlopen
#include <dlfcn.h>

#include <cstring>
#include <ctime>
#include <iostream>
#include <stdexcept>
#include <type_traits>

namespace latch {

Mailer::Mailer(Transport transport) : transport_(std::move(transport)) {
  worker_ = std::thread([this] { run(); });
}

Mailer::~Mailer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  worker_.join();
}

void Mailer::send(Mail mail) {
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= 10000) return; // bounded: a flood of reset requests cannot eat memory
    queue_.push_back(std::move(mail));
  }
  changed_.notify_all();
}

void Mailer::flush() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return queue_.empty() && !busy_; });
}

void Mailer::run() {
  for (;;) {
    Mail mail;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return; // stopping, and everything queued was sent
      mail = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    bool delivered = transport_(mail);
    if (!delivered) std::cerr << "latch: mail to " << mail.to << " could not be delivered\n";
    {
      std::lock_guard lock(mutex_);
      busy_ = false;
    }
    changed_.notify_all();
  }
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
    std::string line = mail.body.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
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
// about 3 MB of an idle one's memory. Opened once, never closed.
struct Curl {
  decltype(&curl_global_init) global_init = nullptr;
  decltype(&curl_easy_init) easy_init = nullptr;
  decltype(&curl_easy_setopt) easy_setopt = nullptr;
  decltype(&curl_easy_perform) easy_perform = nullptr;
  decltype(&curl_easy_strerror) easy_strerror = nullptr;
  decltype(&curl_easy_cleanup) easy_cleanup = nullptr;
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
    symbol(c.easy_perform, "curl_easy_perform");
    symbol(c.easy_strerror, "curl_easy_strerror");
    symbol(c.easy_cleanup, "curl_easy_cleanup");
    symbol(c.slist_append, "curl_slist_append");
    symbol(c.slist_free_all, "curl_slist_free_all");
    // Not thread-safe: this runs at start-up, before the server's threads exist.
    if (c.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      throw std::runtime_error("SMTP: libcurl failed to initialise");
    return c;
  }();
  return curl;
}

} // namespace

Mailer::Transport Mailer::smtp(SmtpSettings s) {
  const Curl &c = curl_library(); // throws now, at start-up, rather than at the first mail
  return [s, &c](const Mail &mail) {
    CURL *curl = c.easy_init();
    if (!curl) return false;
    Upload upload{format_message(mail, s.from), 0};
    struct curl_slist *rcpt = c.slist_append(nullptr, ("<" + mail.to + ">").c_str());
    std::string from = "<" + s.from + ">";
    c.easy_setopt(curl, CURLOPT_URL, s.url.c_str());
    c.easy_setopt(curl, CURLOPT_MAIL_FROM, from.c_str());
    c.easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
    c.easy_setopt(curl, CURLOPT_READFUNCTION, read_upload);
    c.easy_setopt(curl, CURLOPT_READDATA, &upload);
    c.easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    c.easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    c.easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
    c.easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    // smtp:// upgrades with STARTTLS when the server offers it, and insists on it when we
    // would otherwise send a password in the clear; smtps:// is TLS from the start.
    c.easy_setopt(curl, CURLOPT_USE_SSL,
                  s.user.empty() ? static_cast<long>(CURLUSESSL_TRY)
                                 : static_cast<long>(CURLUSESSL_ALL));
    if (!s.user.empty()) {
      c.easy_setopt(curl, CURLOPT_USERNAME, s.user.c_str());
      c.easy_setopt(curl, CURLOPT_PASSWORD, s.password.c_str());
    }
    CURLcode rc = c.easy_perform(curl);
    if (rc != CURLE_OK) std::cerr << "latch: SMTP: " << c.easy_strerror(rc) << "\n";
    c.slist_free_all(rcpt);
    c.easy_cleanup(curl);
    return rc == CURLE_OK;
  };
}

Mailer::Transport Mailer::log() {
  return [](const Mail &mail) {
    // No SMTP configured (local development): the mail goes to the log instead.
    std::cerr << "latch: mail (LATCH_SMTP_URL unset, not sent)\n  To: " << mail.to
              << "\n  Subject: " << mail.subject << "\n  " << mail.body << "\n";
    return true;
  };
}

} // namespace latch
