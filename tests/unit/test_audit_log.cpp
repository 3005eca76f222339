// Unit tests for the audit log part of the store (db::AuditLog) on every engine, and its group
// commit (db/group_commit).
#include "db/group_commit.h"

#include "unit/store_engines.h"

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace latch::db;
using latch::test::Engine;
using latch::test::for_each_engine;

namespace {

constexpr std::int64_t kNow = 1'700'000'000;

AuditEvent event(const std::string &name, std::optional<std::string> user, std::int64_t at,
                 const std::string &request_id = "") {
  AuditEvent e;
  e.at = at;
  e.event = name;
  e.user_id = std::move(user);
  e.api = "picflux";
  e.address = "203.0.113.7";
  e.user_agent = "curl/8.5.0";
  e.request_id = request_id;
  return e;
}

std::vector<std::string> names(const std::vector<AuditEvent> &events) {
  std::vector<std::string> out;
  for (const auto &e : events)
    out.push_back(e.event + ":" + e.user_id.value_or("-"));
  return out;
}

} // namespace

TEST_CASE("the audit log keeps every field, answers newest first, and filters by user, event "
          "and time") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    AuditEvent failed = event("sign_in_failed", std::nullopt, kNow);
    failed.identifier = "nobody@example.com";
    failed.detail = "unknown_user";
    failed.request_id = "req-1";
    store.append_audit({failed});
    AuditEvent admin = event("admin_delete_user", "u1", kNow + 20);
    admin.api = "";
    admin.address = "";
    admin.actor = "cli:root";
    admin.detail = "ann";
    store.append_audit({event("sign_up", "u1", kNow + 5), event("sign_in", "u1", kNow + 10),
                        event("sign_in", "u2", kNow + 15), admin});
    CHECK(engine.count("SELECT count(*) FROM audit_log") == 5);

    auto all = store.query_audit({});
    REQUIRE(all.size() == 5);
    CHECK(names(all) == std::vector<std::string>{"admin_delete_user:u1", "sign_in:u2", "sign_in:u1",
                                                 "sign_up:u1", "sign_in_failed:-"});
    CHECK(all[0].id > all[1].id);
    const AuditEvent &f = all[4];
    CHECK(f.at == kNow);
    CHECK(f.identifier == "nobody@example.com");
    CHECK(f.detail == "unknown_user");
    CHECK(f.api == "picflux");
    CHECK(f.address == "203.0.113.7");
    CHECK(f.user_agent == "curl/8.5.0");
    CHECK(f.request_id == "req-1");
    CHECK(f.actor.empty());
    CHECK(all[0].actor == "cli:root");
    CHECK(all[0].detail == "ann");

    AuditQuery by_user;
    by_user.user_id = "u1";
    CHECK(names(store.query_audit(by_user)) ==
          std::vector<std::string>{"admin_delete_user:u1", "sign_in:u1", "sign_up:u1"});
    AuditQuery by_event;
    by_event.event = "sign_in";
    CHECK(names(store.query_audit(by_event)) ==
          std::vector<std::string>{"sign_in:u2", "sign_in:u1"});
    AuditQuery both = by_user;
    both.event = "sign_in";
    CHECK(names(store.query_audit(both)) == std::vector<std::string>{"sign_in:u1"});
    AuditQuery since;
    since.since = kNow + 10;
    CHECK(store.query_audit(since).size() == 3);
    AuditQuery nobody;
    nobody.user_id = "u9";
    CHECK(store.query_audit(nobody).empty());
  });
}

TEST_CASE("the audit log pages newest first by keyset, and the purge deletes only old events") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    std::vector<AuditEvent> batch;
    for (int i = 0; i < 250; ++i)
      batch.push_back(event(i % 2 ? "sign_in" : "logout", "u" + std::to_string(i % 3), kNow + i,
                            "r" + std::to_string(i)));
    store.append_audit(batch);

    // Every event exactly once over the pages, each page newest first.
    std::set<std::string> seen;
    AuditQuery q;
    q.limit = 40;
    std::int64_t last_at = kNow + 1000;
    int pages = 0;
    for (;;) {
      auto page = store.query_audit(q);
      if (page.empty()) break;
      ++pages;
      CHECK(page.size() <= 40);
      for (const auto &e : page) {
        CHECK(e.at < last_at);
        last_at = e.at;
        CHECK(seen.insert(e.request_id).second);
      }
      q.before_id = page.back().id;
    }
    CHECK(pages == 7);
    CHECK(seen.size() == 250);

    // Paging with a filter: every sign_in of u1.
    AuditQuery filtered;
    filtered.user_id = "u1";
    filtered.event = "sign_in";
    filtered.limit = 10;
    std::size_t total = 0;
    for (;;) {
      auto page = store.query_audit(filtered);
      for (const auto &e : page)
        CHECK((e.event == "sign_in" && e.user_id == "u1"));
      total += page.size();
      if (page.size() < 10) break;
      filtered.before_id = page.back().id;
    }
    CHECK(total ==
          static_cast<std::size_t>(engine.count(
              "SELECT count(*) FROM audit_log WHERE user_id = 'u1' AND event = 'sign_in'")));
    CHECK(total > 30);

    // The purge: at or before the bound, in batches; nothing younger.
    CHECK(store.purge_audit(kNow + 149) == 150);
    CHECK(engine.count("SELECT count(*) FROM audit_log") == 100);
    CHECK(engine.count("SELECT min(at) FROM audit_log") == kNow + 150);
    CHECK(store.purge_audit(kNow + 149) == 0);

    // The filters have their indexes.
    const std::string indexes =
        engine.name == "sqlite"
            ? "SELECT count(*) FROM sqlite_master WHERE type = 'index' "
              "AND name IN ('audit_log_user', 'audit_log_event', 'audit_log_at')"
            : "SELECT count(*) FROM pg_indexes WHERE tablename = "
              "'audit_log' AND indexname IN ('audit_log_user', 'audit_log_event', 'audit_log_at')";
    CHECK(engine.count(indexes) == 3);
  });
}

TEST_CASE("an audit event appended through the group commit is stored when append returns, "
          "from many threads at once, and another store sees it") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    std::atomic<int> committed{0};
    AuditGroupCommit commit(store, [&](const std::vector<AuditEvent> &events) {
      committed += static_cast<int>(events.size());
    });
    auto other = engine.open_again();
    constexpr int kThreads = 6, kEach = 30;
    std::atomic<int> missing{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
          const std::string user = "user-" + id;
          commit.append(event("sign_in", user, kNow, id));
          // Committed before append returned: another connection reads it at once.
          AuditQuery q;
          q.user_id = user;
          if (other->query_audit(q).size() != 1) ++missing;
        }
      });
    for (auto &t : threads)
      t.join();
    CHECK(missing == 0);
    CHECK(committed == kThreads * kEach);
    CHECK(engine.count("SELECT count(*) FROM audit_log") == kThreads * kEach);
  });
}
