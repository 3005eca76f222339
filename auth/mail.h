// Outgoing mail: the sender that empties the database's outbox, and the transports that
// deliver one mail (SMTP through libcurl when configured, otherwise the log).
#pragma once

#include "db/store.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <stop_token>
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
  std::int64_t timeout = 10; // seconds for one mail, connecting included
};

// What became of one attempt to deliver one mail.
struct Delivery {
  enum class Outcome {
    sent,
    temporary, // SMTP 4xx, no connection, a time-out: tried again later
    permanent, // SMTP 5xx: not tried again unless an operator says so
    abandoned, // the sender is stopping: the mail is due again at once, for any sender
  };
  Outcome outcome = Outcome::sent;
  int smtp_code = 0;  // the server's last reply code, 0 if it gave none
  std::string reason; // "SMTP 451", "Couldn't connect to server": never an address or the text
};

// When a mail that could not be sent is tried again (Config: --mail-timeout, --mail-retry,
// --mail-retry-max, --mail-give-up).
struct MailPolicy {
  std::int64_t timeout = 10;     // seconds one attempt may take; a claim lasts 30 s longer
  std::int64_t retry = 30;       // seconds after the first temporary failure, doubled after each
  std::int64_t retry_max = 3600; // the longest wait between attempts
  std::int64_t give_up = 86400;  // a mail still failing this long after it was queued fails
};

// Sends the mail in the outbox (db::Outbox): a thread that wakes when this process enqueues a
// mail, and looks every second for mail other processes enqueued or whose next attempt is due.
// One mail at a time, in the order it became due; a request never waits on it. Temporary
// failures are tried again with exponential backoff, permanent ones are kept as failed; each
// failure is logged with the recipient's domain only, never the address or the mail's text.
class Mailer {
public:
  // Delivers one mail. Returns abandoned, at once, when stop is requested during the exchange.
  using Transport = std::function<Delivery(const Mail &, std::stop_token stop)>;
  using Clock = std::function<std::int64_t()>; // unix seconds

  Mailer(db::Outbox &outbox, Transport transport, MailPolicy policy, Clock clock);
  ~Mailer(); // stop()
  Mailer(const Mailer &) = delete;
  Mailer &operator=(const Mailer &) = delete;

  void start(); // the sender thread (latch serve)
  // A mail was enqueued in this process: the sender looks now rather than within a second.
  void wake();
  // Stops the sender at once: an SMTP exchange in progress is abandoned and its mail released,
  // to be sent again later (so a mail cut off after the server took it may go twice).
  void stop();
  // Sends every mail due now in the calling thread; returns how many it took or dropped. The
  // sender thread runs this; tests call it without one.
  int send_due();

  // Since this process started; queued is the outbox's last count (-1 before the first).
  struct Counts {
    std::int64_t queued = -1;
    std::uint64_t sent = 0, failed = 0, dropped = 0; // dropped: its link died while queued
  };
  Counts counts() const;

  // Seconds to wait after the attempt-th temporary failure (1-based): policy.retry doubled
  // attempt - 1 times, at most policy.retry_max.
  static std::int64_t backoff(const MailPolicy &policy, int attempt);

  // Loads libcurl (dlopen) on first use; throws std::runtime_error, saying why, when it
  // cannot, so a server configured for SMTP fails at start-up rather than at its first mail.
  static Transport smtp(SmtpSettings settings);
  static Transport log();

private:
  int send_due(const std::stop_token &stop);
  // Delivers one taken mail, its link's token written in, and records the outcome; false if
  // it was abandoned.
  bool deliver(const db::QueuedMail &mail, const std::string &token, const std::stop_token &stop);
  void dropped(const db::QueuedMail &mail, std::int64_t now);
  void run(const std::stop_token &stop);
  void database_error(const std::exception &e);

  db::Outbox &outbox_;
  Transport transport_;
  MailPolicy policy_;
  Clock clock_;
  std::atomic<std::int64_t> queued_{-1};
  std::atomic<std::uint64_t> sent_{0}, failed_{0}, dropped_{0};
  std::mutex mutex_;
  std::condition_variable_any changed_;
  bool woken_ = false;
  std::string last_database_error_; // said once, not every second (sender thread only)
  std::mutex stop_mutex_;
  std::jthread worker_;
};

// Builds the RFC 5322 message (headers and body) that goes over SMTP.
std::string format_message(const Mail &mail, const std::string &from);

// What the logs may say of a recipient: the domain, never the local part.
std::string mail_domain(const std::string &address);

} // namespace latch
