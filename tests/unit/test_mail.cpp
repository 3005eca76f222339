// Unit tests for auth/mail: the backoff schedule and the outbox's sender, over a real SQLite
// store with a scripted transport and a fake clock.
#include "auth/mail.h"
#include "auth/secure.h"
#include "db/sqlite_store.h"

#include <doctest/doctest.h>

#include <deque>
#include <string>
#include <vector>

using namespace latch;

namespace {

constexpr std::int64_t kNow = 1'700'000'000;

// A store with one user, a transport that answers what the test scripts, and a sender that
// runs only when the test calls send_due().
struct Outbox {
  db::SqliteStore store{":memory:"};
  std::int64_t clock = kNow;
  std::deque<Delivery> answers; // then "sent" for anything beyond
  std::vector<Mail> attempts;
  MailPolicy policy{10, 30, 3600, 86400};
  Mailer mailer{store,
                [this](const Mail &m, std::stop_token) {
                  attempts.push_back(m);
                  if (answers.empty()) return Delivery{};
                  Delivery d = answers.front();
                  answers.pop_front();
                  return d;
                },
                policy, [this] { return clock; }};

  Outbox() {
    db::User u;
    u.id = "u1";
    u.username = "ann";
    u.email = "ann@example.com";
    u.password_hash = "$argon2id$x";
    u.created_at = u.updated_at = kNow;
    REQUIRE(store.insert_user(u) == db::InsertUserResult::ok);
  }

  // A reset mail, its token row unknown to anyone until the sender makes one.
  void queue(std::int64_t ttl = 900) {
    const std::string hash = secure::sha256_hex(secure::random_token(32));
    db::OutgoingMail m;
    m.recipient = "ann@example.com";
    m.subject = "Reset your password";
    m.body = "https://auth.example/reset-password?token=";
    m.token_at = m.body.size();
    m.body += "\n";
    m.token_hash = hash;
    m.link_expires_at = clock + ttl;
    m.created_at = clock;
    store.insert_one_time_token({hash, "u1", db::TokenPurpose::reset, clock + ttl}, &m);
  }

  std::vector<db::QueuedMail> rows() { return store.list_mail(clock); }
};

Delivery temporary(int code) {
  return {Delivery::Outcome::temporary, code, "SMTP " + std::to_string(code)};
}

std::string token_of(const Mail &m) {
  const std::string marker = "?token=";
  const std::size_t at = m.body.find(marker);
  if (at == std::string::npos) return {};
  return m.body.substr(at + marker.size(), m.body.find('\n', at) - at - marker.size());
}

} // namespace

TEST_CASE("the backoff doubles from --mail-retry up to --mail-retry-max") {
  const MailPolicy p{10, 30, 3600, 86400};
  const std::vector<std::int64_t> schedule = {30, 60, 120, 240, 480, 960, 1920, 3600, 3600};
  for (std::size_t i = 0; i < schedule.size(); ++i) {
    CAPTURE(i);
    CHECK(Mailer::backoff(p, static_cast<int>(i) + 1) == schedule[i]);
  }
  CHECK(Mailer::backoff(p, 1000) == 3600); // no overflow however long it fails
  const MailPolicy quick{2, 1, 2, 60};
  CHECK(Mailer::backoff(quick, 1) == 1);
  CHECK(Mailer::backoff(quick, 2) == 2);
  CHECK(Mailer::backoff(quick, 3) == 2);
}

TEST_CASE("a mail goes with a token of its own that works, and leaves the outbox") {
  Outbox o;
  o.queue();
  CHECK(o.mailer.send_due() == 1);
  REQUIRE(o.attempts.size() == 1);
  const std::string token = token_of(o.attempts[0]);
  CHECK(token.size() >= 43); // 256 bits, base64url
  CHECK(o.attempts[0].to == "ann@example.com");
  CHECK(o.rows().empty());
  CHECK(o.mailer.counts().sent == 1);
  CHECK(o.mailer.counts().queued == 0);
  CHECK(o.store.consume_one_time_token(secure::sha256_hex(token), db::TokenPurpose::reset, o.clock,
                                       nullptr) == db::ConsumeResult::ok);
}

TEST_CASE("a temporary failure is tried again after the backoff, with a new token each time") {
  Outbox o;
  o.queue();
  o.answers = {temporary(451), {Delivery::Outcome::temporary, 0, "Couldn't connect to server"}};
  o.mailer.send_due();
  auto rows = o.rows();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == db::MailState::queued);
  CHECK(rows[0].last_error == "SMTP 451");
  CHECK(rows[0].next_attempt_at == kNow + 30);
  o.clock = kNow + 29;
  CHECK(o.mailer.send_due() == 0); // not due yet
  o.clock = kNow + 30;
  o.mailer.send_due();
  CHECK(o.rows()[0].next_attempt_at == kNow + 30 + 60);
  CHECK(o.rows()[0].last_error == "Couldn't connect to server");
  o.clock = kNow + 90;
  o.mailer.send_due();
  REQUIRE(o.attempts.size() == 3);
  CHECK(o.rows().empty());
  CHECK(o.mailer.counts().sent == 1);
  CHECK(o.mailer.counts().failed == 0);
  // Only the token of the mail that went works.
  CHECK(token_of(o.attempts[0]) != token_of(o.attempts[2]));
  CHECK(o.store.consume_one_time_token(secure::sha256_hex(token_of(o.attempts[0])),
                                       db::TokenPurpose::reset, o.clock,
                                       nullptr) == db::ConsumeResult::invalid);
  CHECK(o.store.consume_one_time_token(secure::sha256_hex(token_of(o.attempts[2])),
                                       db::TokenPurpose::reset, o.clock,
                                       nullptr) == db::ConsumeResult::ok);
}

TEST_CASE("a permanent failure is given up at once and kept as failed") {
  Outbox o;
  o.queue(7 * 86400);
  o.answers = {{Delivery::Outcome::permanent, 550, "SMTP 550"}};
  o.mailer.send_due();
  auto rows = o.rows();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == db::MailState::failed);
  CHECK(rows[0].last_error == "SMTP 550");
  CHECK(o.mailer.counts().failed == 1);
  o.clock += 86400;
  CHECK(o.mailer.send_due() == 0); // a failed mail whose link still works waits for retry
  CHECK(o.rows().size() == 1);
  CHECK(o.attempts.size() == 1);
}

TEST_CASE("temporary failures past --mail-give-up fail the mail") {
  Outbox o;
  o.queue(7 * 86400); // a link that outlives the give-up time
  for (int i = 0; i < 40; ++i)
    o.answers.push_back(temporary(421));
  for (int i = 0; i < 40 && !o.rows().empty() && o.rows()[0].state == db::MailState::queued; ++i) {
    o.clock = std::max(o.clock, o.rows()[0].next_attempt_at);
    o.mailer.send_due();
  }
  auto rows = o.rows();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == db::MailState::failed);
  CHECK(rows[0].last_error.find("SMTP 421") != std::string::npos);
  CHECK(o.clock <= kNow + o.policy.give_up);
  CHECK(o.mailer.counts().failed == 1);
}

TEST_CASE("a mail whose link expired while it waited is dropped, never sent") {
  Outbox o;
  o.queue(60);
  o.answers = {temporary(451)};
  o.mailer.send_due();
  o.clock = kNow + 60;
  o.mailer.send_due();
  CHECK(o.attempts.size() == 1);
  CHECK(o.rows().empty());
  CHECK(o.mailer.counts().dropped == 1);
  CHECK(o.mailer.counts().sent == 0);
}

TEST_CASE("an abandoned attempt (the server stopping) leaves the mail due at once") {
  Outbox o;
  o.queue();
  o.answers = {{Delivery::Outcome::abandoned, 0, "the server is stopping"}};
  o.mailer.send_due();
  auto rows = o.rows();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == db::MailState::queued);
  CHECK(rows[0].lease_until == 0);
  o.mailer.send_due();
  CHECK(o.attempts.size() == 2);
  CHECK(o.rows().empty());
}
