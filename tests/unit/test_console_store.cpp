// Unit tests of the console's part of the store (db::Admins) on every engine: admins, their
// sessions (deleted with the admin), the users' pages and search, the counts.
#include "unit/store_engines.h"

#include <doctest/doctest.h>

#include <set>
#include <string>

using namespace latch::db;
using latch::test::Engine;
using latch::test::for_each_engine;

namespace {

constexpr std::int64_t kNow = 1'700'000'000;

User user(int n, const std::string &username, std::optional<std::string> email,
          std::int64_t created_at) {
  User u;
  u.id = "00000000-0000-4000-8000-" + std::string(12 - std::to_string(n).size(), '0') +
         std::to_string(n);
  u.username = username;
  u.username_key = username; // lower-case ASCII: its own key
  u.username_skeleton = username;
  u.email = std::move(email);
  u.password_hash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA";
  u.created_at = created_at;
  u.updated_at = created_at;
  return u;
}

std::set<std::string> names(const std::vector<User> &users) {
  std::set<std::string> out;
  for (const auto &u : users)
    out.insert(u.username);
  return out;
}

} // namespace

TEST_CASE("admins: inserted once per email, listed, found, deleted with their sessions") {
  for_each_engine([](Engine &e) {
    Store &s = *e.store;
    CHECK(s.count_admins() == 0);
    CHECK(s.insert_admin({"a1", "boss@example.com", "hash1", kNow}));
    CHECK_FALSE(s.insert_admin({"a2", "boss@example.com", "hash2", kNow + 1})); // taken
    CHECK(s.insert_admin({"a3", "other@example.com", "hash3", kNow + 2}));
    CHECK(s.count_admins() == 2);
    auto all = s.list_admins();
    REQUIRE(all.size() == 2);
    CHECK(all[0].email == "boss@example.com"); // oldest first
    auto found = s.find_admin_by_email("boss@example.com");
    REQUIRE(found);
    CHECK(found->id == "a1");
    CHECK(found->password_hash == "hash1");
    CHECK_FALSE(s.find_admin_by_email("nobody@example.com"));

    s.insert_console_session({"h1", "a1", "", "csrf1", kNow, kNow, kNow + 100});
    s.insert_console_session({"h3", "a3", "", "csrf3", kNow, kNow, kNow + 100});
    auto session = s.find_console_session("h1");
    REQUIRE(session);
    CHECK(session->admin_email == "boss@example.com");
    CHECK(session->csrf_token == "csrf1");
    CHECK(session->expires_at == kNow + 100);
    s.touch_console_session("h1", kNow + 50, kNow + 150);
    session = e.open_again()->find_console_session("h1"); // stored, not remembered
    REQUIRE(session);
    CHECK(session->last_seen_at == kNow + 50);
    CHECK(session->expires_at == kNow + 150);

    // Deleting the admin ends its sessions, and only its.
    CHECK(s.delete_admin("boss@example.com"));
    CHECK_FALSE(s.delete_admin("boss@example.com"));
    CHECK_FALSE(s.find_console_session("h1"));
    CHECK(s.find_console_session("h3"));
    CHECK(e.count("SELECT count(*) FROM console_sessions") == 1);
    s.delete_console_session("h3");
    CHECK_FALSE(s.find_console_session("h3"));
    CHECK(s.count_admins() == 1);
  });
}

TEST_CASE("users: pages newest first after a cursor, searched by username or email prefix") {
  for_each_engine([](Engine &e) {
    Store &s = *e.store;
    // Two users share a second: the id orders them.
    REQUIRE(s.insert_user(user(1, "alice", "alice@example.com", kNow)) == InsertUserResult::ok);
    REQUIRE(s.insert_user(user(2, "bob", "zed@example.com", kNow + 1)) == InsertUserResult::ok);
    REQUIRE(s.insert_user(user(3, "albert", std::nullopt, kNow + 1)) == InsertUserResult::ok);
    REQUIRE(s.insert_user(user(4, "carol", "al%_@example.com", kNow + 2)) == InsertUserResult::ok);
    CHECK(s.count_users() == 4);

    auto first = s.page_users("", std::nullopt, 2);
    REQUIRE(first.size() == 2);
    CHECK(first[0].username == "carol");
    CHECK(first[1].username == "albert"); // kNow + 1, the larger id first
    auto second = s.page_users("", UserCursor{first[1].created_at, first[1].id}, 2);
    REQUIRE(second.size() == 2);
    CHECK(second[0].username == "bob");
    CHECK(second[1].username == "alice");
    CHECK(s.page_users("", UserCursor{second[1].created_at, second[1].id}, 2).empty());

    // A prefix of the username key or of the email; LIKE's wildcards are plain text.
    CHECK(names(s.page_users("al", std::nullopt, 10)) ==
          std::set<std::string>{"alice", "albert", "carol"});
    CHECK(names(s.page_users("al%", std::nullopt, 10)) == std::set<std::string>{"carol"});
    CHECK(names(s.page_users("zed@", std::nullopt, 10)) == std::set<std::string>{"bob"});
    CHECK(names(s.page_users("lice", std::nullopt, 10)).empty()); // a prefix, not a substring
    auto page = s.page_users("al", std::nullopt, 1);
    REQUIRE(page.size() == 1);
    CHECK(page[0].username == "carol");
    page = s.page_users("al", UserCursor{page[0].created_at, page[0].id}, 5);
    CHECK(names(page) == std::set<std::string>{"alice", "albert"});

    CHECK(s.database_bytes() > 0);
  });
}
