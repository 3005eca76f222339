// Outgoing mail: SMTP through libcurl when configured, otherwise written to the log.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace latch {

struct Mail {
  std::string to;
  std::string subject;
  std::string body;
};

struct SmtpSettings {
  std::string url; // smtp://host:port or smtps://host:port
  std::string user, password;
  std::string from;
};

// Delivers mail on a background thread, so a request never waits on (and its timing never
// reveals) mail delivery.
class Mailer {
public:
  using Transport = std::function<bool(const Mail &)>;

  explicit Mailer(Transport transport);
  ~Mailer();
  Mailer(const Mailer &) = delete;
  Mailer &operator=(const Mailer &) = delete;

  void send(Mail mail);
  void flush(); // waits until the queue is empty (tests, shutdown)

  // Loads libcurl (dlopen) on first use; throws std::runtime_error, saying why, when it
  // cannot, so a server configured for SMTP fails at start-up rather than at its first mail.
  static Transport smtp(SmtpSettings settings);
  static Transport log();

private:
  void run();

  Transport transport_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Mail> queue_;
  bool busy_ = false;
  bool stopping_ = false;
  std::thread worker_;
};

// Builds the RFC 5322 message (headers and body) that goes over SMTP.
std::string format_message(const Mail &mail, const std::string &from);

} // namespace latch
