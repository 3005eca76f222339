// Unit tests for db/sqlite_store: schema, users, sessions, revocation, one-time tokens, purge.
#include "db/schema.h"
#include "db/sqlite_store.h"

#include "support/temp_dir.h"
#include "unit/store_engines.h"

#include <doctest/doctest.h>

#include <atomic>

#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <sstream>
#include <string>

using namespace latch::db;
using latch::test::Engine;
using latch::test::for_each_engine;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kNow = 1'700'000'000;

// The number of the last "-- migration N" block (the numbers rise; one may be merged later).
int migrations_in_schema() {
  std::istringstream in(kSchemaSql);
  std::string line;
  int n = 0;
  while (std::getline(in, line))
    if (line.rfind("-- migration ", 0) == 0) n = std::stoi(line.substr(13));
  return n;
}

User make_user(const std::string &id, const std::string &username,
               std::optional<std::string> email) {
  User u;
  u.id = id;
  u.username = username;
  u.email = std::move(email);
  u.password_hash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA";
  u.display_name = "Display " + username;
  u.profile_picture = "https://img.example/" + username + ".png";
  u.phone_number = "+15550100";
  u.created_at = kNow;
  u.updated_at = kNow;
  return u;
}

Session make_session(const std::string &id, const std::string &user_id,
                     const std::string &refresh_jti, std::int64_t expires_at) {
  Session s;
  s.id = id;
  s.user_id = user_id;
  s.api = "picflux";
  s.refresh_jti = refresh_jti;
  s.created_at = kNow;
  s.expires_at = expires_at;
  return s;
}

// Counts rows with plain SQLite, outside the store, to see what is really on disk.
long long count_rows(const std::string &db_path, const std::string &sql) {
  sqlite3 *db = nullptr;
  REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt *st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
  long long n = -1;
  if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

} // namespace

// One rotation, as a batch of one.
RotateResult rotate(Store &store, const std::string &session, const std::string &user,
                    const std::string &old_jti, const std::string &new_jti,
                    std::int64_t new_expires_at, std::int64_t now) {
  return store.rotate_refresh({Rotation{session, user, old_jti, new_jti, new_expires_at, now}})
      .outcomes.front()
      .result;
}

TEST_CASE("a fresh database is migrated to the last migration in auth.db.sql and is sound") {
  latch::test::TempDir dir;
  SqliteStore store(dir.file("auth.db"));
  CHECK(migrations_in_schema() >= 1);
  CHECK(store.schema_version() == migrations_in_schema());
  CHECK(store.integrity_check() == "ok");
  for (const char *table :
       {"users", "sessions", "token_blacklist", "one_time_tokens", "settings", "signing_keys"}) {
    CAPTURE(table);
    CHECK(
        count_rows(dir.file("auth.db"),
                   std::string("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='") +
                       table + "'") == 1);
  }
}

TEST_CASE("opening an existing database again changes nothing and keeps its data") {
  latch::test::TempDir dir;
  const std::string path = dir.file("auth.db");
  int version = 0;
  {
    SqliteStore store(path);
    version = store.schema_version();
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    store.ensure_signing_key({"first", "secret-first", kNow, std::nullopt, false});
  }
  for (int i = 0; i < 2; ++i) {
    SqliteStore again(path);
    CHECK(again.schema_version() == version);
    CHECK(again.integrity_check() == "ok");
    auto u = again.find_user_by_id("u1");
    REQUIRE(u.has_value());
    CHECK(u->username == "ann");
    REQUIRE(again.signing_keys().size() == 1);
    CHECK(again.signing_keys().front().kid == "first");
  }
  CHECK(count_rows(path, "SELECT count(*) FROM users") == 1);
}

TEST_CASE("the database file is created with mode 0600") {
  latch::test::TempDir dir;
  const std::string path = dir.file("auth.db");
  // A permissive umask, so the 0600 must come from the code; restored on every way out.
  struct UmaskGuard {
    mode_t old = ::umask(022);
    ~UmaskGuard() { ::umask(old); }
  } umask_guard;
  {
    SqliteStore store(path);
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    // SQLite gives the WAL file the database file's mode.
    if (::stat((path + "-wal").c_str(), &st) == 0) CHECK((st.st_mode & 0777) == 0600);
  }
}

TEST_CASE("an in-memory store works for quick use") {
  SqliteStore store(":memory:");
  CHECK(store.schema_version() == migrations_in_schema());
  CHECK(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
  CHECK(store.find_user_by_username("ANN").has_value());
}

TEST_CASE("a store on a path that cannot be created throws StoreError") {
  latch::test::TempDir dir;
  CHECK_THROWS_AS(SqliteStore(dir.file("missing-dir/auth.db")), StoreError);
}

TEST_CASE("the store's connection has PRAGMA synchronous as its Sync says: NORMAL unless FULL") {
  latch::test::TempDir dir;
  const std::string path = dir.file("auth.db");
  {
    SqliteStore store(path);
    CHECK(store.synchronous() == 1);
  }
  {
    SqliteStore store(path, SqliteStore::Open::existing, {}, SqliteStore::Sync::normal);
    CHECK(store.synchronous() == 1);
  }
  {
    SqliteStore store(path, SqliteStore::Open::existing, {}, SqliteStore::Sync::full);
    CHECK(store.synchronous() == 2);
    CHECK(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
  }
  SqliteStore store(path, SqliteStore::Open::create, {}, SqliteStore::Sync::full);
  CHECK(store.synchronous() == 2);
  CHECK(store.find_user_by_username("ann").has_value()); // the commit made under FULL is there
}

TEST_CASE("insert_user enforces case-insensitive usernames and unique emails") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    CHECK(store.insert_user(make_user("u1", "Ann", "ann@example.com")) == InsertUserResult::ok);
    CHECK(store.insert_user(make_user("u2", "ann", "other@example.com")) ==
          InsertUserResult::username_taken);
    CHECK(store.insert_user(make_user("u3", "ANN", std::nullopt)) ==
          InsertUserResult::username_taken);
    CHECK(store.insert_user(make_user("u4", "bob", "ann@example.com")) ==
          InsertUserResult::email_taken);
    CHECK(store.list_users().size() == 1);
    // Users without an email (simplejwt) do not collide with each other.
    CHECK(store.insert_user(make_user("u5", "carol", std::nullopt)) == InsertUserResult::ok);
    CHECK(store.insert_user(make_user("u6", "dave", std::nullopt)) == InsertUserResult::ok);
    CHECK(store.list_users().size() == 3);
  });
}

TEST_CASE("import_users writes all or nothing, skips taken users when asked, and a dry run "
          "writes nothing") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    User inactive = make_user("u2", "bob", "bob@example.com");
    inactive.active = false;
    const std::vector<User> batch = {
        inactive, make_user("u1", "carol", std::nullopt), make_user("u4", "ANN", std::nullopt),
        make_user("u5", "dave", "ANN@example.com"), make_user("u6", "erin", "erin@example.com")};
    using R = ImportResult;
    CHECK(store.import_users(batch, false, false) == std::vector<R>{R::inserted, R::id_taken});
    CHECK(store.list_users().size() == 1); // nothing of it
    const std::vector<R> all = {R::inserted, R::id_taken, R::username_taken, R::inserted,
                                R::inserted};
    CHECK(store.import_users(batch, true, true) == all); // "ANN@example.com" is not lower-cased
    CHECK(store.list_users().size() == 1);
    CHECK(store.import_users(batch, true, false) == all);
    CHECK(store.list_users().size() == 4);
    CHECK_FALSE(store.find_user_by_id("u2")->active);
    CHECK(store.find_user_by_id("u6")->active);
    // Within one batch, a user is checked against those inserted before it.
    CHECK(store.import_users(
              {make_user("u7", "frank", std::nullopt), make_user("u8", "FRANK", std::nullopt)},
              false, false) == std::vector<R>{R::inserted, R::username_taken});
    CHECK_FALSE(store.find_user_by_id("u7"));
  });
}

TEST_CASE("users are found by id, by email and by username in any case") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    User ann = make_user("id-ann", "Ann", "ann@example.com");
    ann.email_verified = true;
    ann.created_at = kNow - 10;
    ann.updated_at = kNow - 5;
    REQUIRE(store.insert_user(ann) == InsertUserResult::ok);
    REQUIRE(store.insert_user(make_user("id-bob", "bob", std::nullopt)) == InsertUserResult::ok);

    auto by_id = store.find_user_by_id("id-ann");
    REQUIRE(by_id.has_value());
    CHECK(by_id->username == "Ann");
    CHECK(by_id->email == std::optional<std::string>("ann@example.com"));
    CHECK(by_id->password_hash == ann.password_hash);
    CHECK(by_id->display_name == "Display Ann");
    CHECK(by_id->profile_picture == "https://img.example/Ann.png");
    CHECK(by_id->phone_number == "+15550100");
    CHECK(by_id->email_verified);
    CHECK(by_id->created_at == kNow - 10);
    CHECK(by_id->updated_at == kNow - 5);

    auto by_email = store.find_user_by_email("ann@example.com");
    REQUIRE(by_email.has_value());
    CHECK(by_email->id == "id-ann");

    for (const char *name : {"Ann", "ann", "ANN", "aNn"}) {
      CAPTURE(name);
      auto u = store.find_user_by_username(name);
      REQUIRE(u.has_value());
      CHECK(u->id == "id-ann");
      CHECK(u->username == "Ann"); // stored as typed
    }

    auto bob = store.find_user_by_username("BOB");
    REQUIRE(bob.has_value());
    CHECK_FALSE(bob->email.has_value());
    CHECK_FALSE(bob->email_verified);

    CHECK_FALSE(store.find_user_by_id("nobody").has_value());
    CHECK_FALSE(store.find_user_by_email("nobody@example.com").has_value());
    CHECK_FALSE(store.find_user_by_username("annie").has_value());
    CHECK_FALSE(store.find_user_by_username("").has_value());
    // A NUL byte and more after the name is another name on every engine (libpq would cut the
    // value at the NUL, and "ann" would sign in for "ann\0x").
    using namespace std::string_literals;
    CHECK_FALSE(store.find_user_by_username("ann\0x"s).has_value());
    CHECK_FALSE(store.find_user_by_username_key("ann\0x"s).has_value());
    CHECK_FALSE(store.find_user_by_id("id-ann\0x"s).has_value());
    CHECK_FALSE(store.find_user_by_email("ann@example.com\0x"s).has_value());
  });
}

TEST_CASE("identity_taken checks the username (exact, key, skeleton) and the email") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    User ann = make_user("u1", "Ann", "ann@example.com");
    ann.username_key = "ann";
    ann.username_skeleton = "skeleton-of-ann";
    REQUIRE(store.insert_user(ann) == InsertUserResult::ok);
    auto candidate = [](const std::string &username, std::optional<std::string> key,
                        std::optional<std::string> skeleton, std::optional<std::string> email) {
      User u = make_user("new", username, std::move(email));
      u.username_key = std::move(key);
      u.username_skeleton = std::move(skeleton);
      return u;
    };
    CHECK(store.identity_taken(candidate("ANN", "x", "y", std::nullopt)) ==
          InsertUserResult::username_taken); // the stored name, ASCII case aside
    CHECK(store.identity_taken(candidate("z1", "ann", "y", std::nullopt)) ==
          InsertUserResult::username_taken); // the key
    CHECK(store.identity_taken(candidate("z2", "x", "skeleton-of-ann", std::nullopt)) ==
          InsertUserResult::username_taken); // the skeleton
    CHECK(store.identity_taken(candidate("z3", "ann@example.com", "y", std::nullopt)) ==
          InsertUserResult::username_taken); // a key equal to an email
    CHECK(store.identity_taken(candidate("zed", "zed", "zed", std::string("ann@example.com"))) ==
          InsertUserResult::email_taken);
    CHECK(store.identity_taken(candidate("zed", "zed", "zed", std::string("ann"))) ==
          InsertUserResult::email_taken); // an email equal to a username key
    CHECK(store.identity_taken(candidate("zed", "zed", "zed", std::string("zed@example.com"))) ==
          InsertUserResult::ok);
    CHECK(store.identity_taken(candidate("zed", "zed", "zed", std::nullopt)) ==
          InsertUserResult::ok);
    // A user does not clash with itself (a rename to another spelling of its own name).
    User self = candidate("ANN", "ann", "skeleton-of-ann", std::nullopt);
    self.id = "u1";
    CHECK(store.identity_taken(self) == InsertUserResult::ok);
    // insert_user applies the same check: the skeleton index alone would not refuse this one.
    CHECK(store.insert_user(candidate("z2", "x", "skeleton-of-ann", std::nullopt)) ==
          InsertUserResult::username_taken);
    CHECK(store.list_users().size() == 1);
  });
}
TEST_CASE("update_password_hash and set_email_verified change only the named user") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    REQUIRE(store.insert_user(make_user("u2", "bob", "bob@example.com")) == InsertUserResult::ok);
    store.update_password_hash("u1", "$argon2id$new", kNow + 100);
    store.set_email_verified("u1", kNow + 200);
    auto ann = store.find_user_by_id("u1");
    auto bob = store.find_user_by_id("u2");
    REQUIRE(ann.has_value());
    REQUIRE(bob.has_value());
    CHECK(ann->password_hash == "$argon2id$new");
    CHECK(ann->email_verified);
    CHECK(ann->updated_at == kNow + 200);
    CHECK(bob->password_hash == make_user("x", "x", std::nullopt).password_hash);
    CHECK_FALSE(bob->email_verified);
    CHECK(bob->updated_at == kNow);
  });
}

TEST_CASE("a session is stored and found with its refresh token") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    store.insert_session(make_session("s1", "u1", "jti-1", kNow + 3600));
    store.insert_session(make_session("s2", "u1", "", kNow + 3600));
    auto s1 = store.find_session("s1");
    REQUIRE(s1.has_value());
    CHECK(s1->user_id == "u1");
    CHECK(s1->api == "picflux");
    CHECK(s1->refresh_jti == "jti-1");
    CHECK(s1->created_at == kNow);
    CHECK(s1->expires_at == kNow + 3600);
    CHECK_FALSE(s1->revoked);
    auto s2 = store.find_session("s2");
    REQUIRE(s2.has_value());
    CHECK(s2->refresh_jti.empty());
    CHECK_FALSE(store.find_session("s3").has_value());
    // A session must belong to a user.
    CHECK_THROWS_AS(store.insert_session(make_session("s4", "ghost", "j", kNow + 60)), StoreError);
  });
}

TEST_CASE("rotate_refresh swaps the current refresh token and extends the session") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    store.insert_session(make_session("s1", "u1", "jti-1", kNow + 3600));
    CHECK(rotate(store, "s1", "u1", "jti-1", "jti-2", kNow + 7200, kNow) == RotateResult::rotated);
    auto s = store.find_session("s1");
    REQUIRE(s.has_value());
    CHECK(s->refresh_jti == "jti-2");
    CHECK(s->expires_at == kNow + 7200);
    CHECK_FALSE(s->revoked);
    // A shorter new expiry never shortens the session.
    CHECK(rotate(store, "s1", "u1", "jti-2", "jti-3", kNow + 10, kNow + 1) ==
          RotateResult::rotated);
    s = store.find_session("s1");
    REQUIRE(s.has_value());
    CHECK(s->refresh_jti == "jti-3");
    CHECK(s->expires_at == kNow + 7200);
  });
}

TEST_CASE("presenting an already-rotated refresh token revokes the whole session") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    store.insert_session(make_session("s1", "u1", "jti-1", kNow + 3600));
    REQUIRE(rotate(store, "s1", "u1", "jti-1", "jti-2", kNow + 3600, kNow) ==
            RotateResult::rotated);
    CHECK(rotate(store, "s1", "u1", "jti-1", "jti-x", kNow + 3600, kNow + 5) ==
          RotateResult::reused);
    auto s = store.find_session("s1");
    REQUIRE(s.has_value());
    CHECK(s->revoked);
    CHECK(s->refresh_jti == "jti-2");
    // The legitimate holder's token dies with the session.
    CHECK(rotate(store, "s1", "u1", "jti-2", "jti-3", kNow + 3600, kNow + 6) == RotateResult::gone);
  });
}

TEST_CASE("within the reuse interval the token rotated last is replayed with the current jti; "
          "an older one is reused") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    store.insert_session(make_session("s1", "u1", "jti-1", kNow + 3600));
    auto one = [&](const std::string &old_jti, const std::string &new_jti, std::int64_t expires,
                   std::int64_t now) {
      return store.rotate_refresh({Rotation{"s1", "u1", old_jti, new_jti, expires, now, 10}})
          .outcomes.front();
    };
    REQUIRE(one("jti-1", "jti-2", kNow + 3600, kNow).result == RotateResult::rotated);
    // The replaced token again, at the edge of the interval: the rotation's token, and the
    // session lives as long as the newest token issued in it; nothing rotates.
    RotateOutcome again = one("jti-1", "jti-x", kNow + 7200, kNow + 10);
    CHECK(again.result == RotateResult::replayed);
    CHECK(again.refresh_jti == "jti-2");
    auto s = store.find_session("s1");
    REQUIRE(s.has_value());
    CHECK(s->refresh_jti == "jti-2");
    CHECK(s->expires_at == kNow + 7200);
    CHECK_FALSE(s->revoked);
    // Renewing without rotating (new_jti = old_jti) leaves the token one step back as it was.
    REQUIRE(one("jti-2", "jti-2", kNow + 7200, kNow + 10).result == RotateResult::rotated);
    CHECK(one("jti-1", "jti-y", kNow + 7200, kNow + 10).result == RotateResult::replayed);
    // A second rotation: jti-2 is one step back now, and jti-1 two steps back, which is theft.
    REQUIRE(one("jti-2", "jti-3", kNow + 7200, kNow + 11).result == RotateResult::rotated);
    CHECK(one("jti-2", "jti-z", kNow + 7200, kNow + 12).refresh_jti == "jti-3");
    // Read on a server whose clock is up to the interval behind the one that rotated: the same.
    CHECK(one("jti-2", "jti-v", kNow + 7200, kNow + 1).result == RotateResult::replayed);
    CHECK(one("jti-1", "jti-w", kNow + 7200, kNow + 12).result == RotateResult::reused);
    CHECK(store.find_session("s1")->revoked);
    CHECK(one("jti-3", "jti-4", kNow + 7200, kNow + 12).result == RotateResult::gone);
  });
}

TEST_CASE("past the reuse interval, or with none, the token rotated last is reused") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    struct Case {
      const char *name;
      std::int64_t interval, replay_at;
    };
    for (const Case &c : {Case{"one second past the interval", 10, kNow + 11},
                          Case{"before the rotation by more than the interval", 10, kNow - 11},
                          Case{"no interval", 0, kNow}}) {
      CAPTURE(c.name);
      const std::string id = std::string("s-") + c.name;
      store.insert_session(make_session(id, "u1", "jti-1", kNow + 3600));
      REQUIRE(
          store
              .rotate_refresh({Rotation{id, "u1", "jti-1", "jti-2", kNow + 3600, kNow, c.interval}})
              .outcomes.front()
              .result == RotateResult::rotated);
      CHECK(store
                .rotate_refresh(
                    {Rotation{id, "u1", "jti-1", "jti-x", kNow + 3600, c.replay_at, c.interval}})
                .outcomes.front()
                .result == RotateResult::reused);
      CHECK(store.find_session(id)->revoked);
    }
  });
}

TEST_CASE("rotate_refresh on a revoked, expired or unknown session is gone") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    store.insert_session(make_session("revoked", "u1", "j1", kNow + 3600));
    store.insert_session(make_session("expired", "u1", "j2", kNow + 100));
    store.revoke_session("revoked", kNow);
    CHECK(store.find_session("revoked")->revoked);
    CHECK(rotate(store, "revoked", "u1", "j1", "n1", kNow + 3600, kNow) == RotateResult::gone);
    CHECK(rotate(store, "expired", "u1", "j2", "n2", kNow + 3600, kNow + 100) ==
          RotateResult::gone);
    CHECK(rotate(store, "nothing", "u1", "j3", "n3", kNow + 3600, kNow) == RotateResult::gone);
    // A gone answer changes nothing.
    auto expired = store.find_session("expired");
    REQUIRE(expired.has_value());
    CHECK(expired->refresh_jti == "j2");
    CHECK_FALSE(expired->revoked);
    CHECK(rotate(store, "expired", "u1", "j2", "n2", kNow + 3600, kNow + 99) ==
          RotateResult::rotated);
  });
}

TEST_CASE("logout blacklists the access token and revokes the session in one step") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    store.insert_session(make_session("s1", "u1", "r1", kNow + 3600));
    store.insert_session(make_session("s2", "u1", "r2", kNow + 3600));
    CHECK_FALSE(store.is_blacklisted("access-1"));
    store.logout("s1", "access-1", kNow + 900, kNow);
    CHECK(store.is_blacklisted("access-1"));
    CHECK_FALSE(store.is_blacklisted("access-2"));
    CHECK(store.find_session("s1")->revoked);
    CHECK_FALSE(store.find_session("s2")->revoked);
    CHECK(rotate(store, "s1", "u1", "r1", "r1b", kNow + 3600, kNow + 1) == RotateResult::gone);
    // Logging out twice with the same token is harmless.
    store.logout("s1", "access-1", kNow + 900, kNow + 2);
    CHECK(store.is_blacklisted("access-1"));
  });
}

TEST_CASE("a one-time token is consumed once and names its user") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    store.insert_one_time_token({"hash-1", "u1", TokenPurpose::verify_email, kNow + 600});
    std::string uid = "unchanged";
    // The wrong purpose does not find it, and does not spend it.
    CHECK(store.consume_one_time_token("hash-1", TokenPurpose::reset, kNow, &uid) ==
          ConsumeResult::invalid);
    CHECK(uid == "unchanged");
    CHECK(store.consume_one_time_token("hash-1", TokenPurpose::verify_email, kNow, &uid) ==
          ConsumeResult::ok);
    CHECK(uid == "u1");
    CHECK(store.consume_one_time_token("hash-1", TokenPurpose::verify_email, kNow, &uid) ==
          ConsumeResult::invalid);
    CHECK(store.consume_one_time_token("never-issued", TokenPurpose::verify_email, kNow, nullptr) ==
          ConsumeResult::invalid);
  });
}

TEST_CASE("an expired one-time token reports expired once and is gone after") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    store.insert_one_time_token({"hash-1", "u1", TokenPurpose::reset, kNow + 600});
    std::string uid;
    CHECK(store.consume_one_time_token("hash-1", TokenPurpose::reset, kNow + 600, &uid) ==
          ConsumeResult::expired);
    CHECK(uid.empty());
    CHECK(store.consume_one_time_token("hash-1", TokenPurpose::reset, kNow, &uid) ==
          ConsumeResult::invalid);
  });
}

TEST_CASE("reset_password sets the hash, revokes every session and spends the reset tokens") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    REQUIRE(store.insert_user(make_user("u2", "bob", "bob@example.com")) == InsertUserResult::ok);
    store.insert_session(make_session("a1", "u1", "r1", kNow + 3600));
    store.insert_session(make_session("a2", "u1", "r2", kNow + 3600));
    store.insert_session(make_session("b1", "u2", "r3", kNow + 3600));
    store.insert_one_time_token({"reset-1", "u1", TokenPurpose::reset, kNow + 900});
    store.insert_one_time_token({"reset-2", "u1", TokenPurpose::reset, kNow + 900});
    store.insert_one_time_token({"verify-1", "u1", TokenPurpose::verify_email, kNow + 900});
    store.insert_one_time_token({"reset-bob", "u2", TokenPurpose::reset, kNow + 900});

    std::string uid;
    CHECK(store.reset_password("reset-1", "$argon2id$reset", kNow + 10, &uid) == ConsumeResult::ok);
    CHECK(uid == "u1");
    auto ann = store.find_user_by_id("u1");
    REQUIRE(ann.has_value());
    CHECK(ann->password_hash == "$argon2id$reset");
    CHECK(ann->updated_at == kNow + 10);
    CHECK(store.find_session("a1")->revoked);
    CHECK(store.find_session("a2")->revoked);
    CHECK_FALSE(store.find_session("b1")->revoked);
    CHECK(store.find_user_by_id("u2")->password_hash != "$argon2id$reset");

    // The token is spent, and so is the user's other reset link; other purposes and users stay.
    CHECK(store.reset_password("reset-1", "$argon2id$again", kNow + 11, nullptr) ==
          ConsumeResult::invalid);
    CHECK(store.reset_password("reset-2", "$argon2id$again", kNow + 11, nullptr) ==
          ConsumeResult::invalid);
    CHECK(store.find_user_by_id("u1")->password_hash == "$argon2id$reset");
    CHECK(engine.count("SELECT count(*) FROM one_time_tokens WHERE token_hash='verify-1'") == 1);
    CHECK(engine.count("SELECT count(*) FROM one_time_tokens WHERE token_hash='reset-bob'") == 1);
  });
}

TEST_CASE("reset_password with an expired or verification token changes nothing") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    store.insert_session(make_session("a1", "u1", "r1", kNow + 3600));
    store.insert_one_time_token({"reset-old", "u1", TokenPurpose::reset, kNow});
    store.insert_one_time_token({"verify-1", "u1", TokenPurpose::verify_email, kNow + 900});
    const std::string before = store.find_user_by_id("u1")->password_hash;

    CHECK(store.reset_password("reset-old", "$argon2id$x", kNow, nullptr) ==
          ConsumeResult::expired);
    CHECK(store.reset_password("verify-1", "$argon2id$x", kNow, nullptr) == ConsumeResult::invalid);
    CHECK(store.find_user_by_id("u1")->password_hash == before);
    CHECK_FALSE(store.find_session("a1")->revoked);
    // The verification token was not spent by the failed attempt.
    CHECK(store.consume_one_time_token("verify-1", TokenPurpose::verify_email, kNow, nullptr) ==
          ConsumeResult::ok);
  });
}

TEST_CASE("purge_expired deletes only expired rows and counts them") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    store.insert_session(make_session("old-1", "u1", "r1", kNow - 1));
    store.insert_session(make_session("old-2", "u1", "r2", kNow));
    store.insert_session(make_session("live", "u1", "r3", kNow + 1));
    store.logout("live", "jti-old", kNow - 100, kNow - 200);
    store.logout("live", "jti-live", kNow + 60, kNow - 200);
    store.insert_one_time_token({"t-old", "u1", TokenPurpose::reset, kNow});
    store.insert_one_time_token({"t-live", "u1", TokenPurpose::reset, kNow + 900});
    store.insert_one_time_token({"v-old", "u1", TokenPurpose::verify_email, kNow - 5});

    PurgeCounts c = store.purge_expired(kNow, kNow - 100000);
    CHECK(c.sessions == 2);
    CHECK(c.blacklist == 1);
    CHECK(c.one_time_tokens == 2);

    CHECK_FALSE(store.find_session("old-1").has_value());
    CHECK_FALSE(store.find_session("old-2").has_value());
    CHECK(store.find_session("live").has_value());
    CHECK_FALSE(store.is_blacklisted("jti-old"));
    CHECK(store.is_blacklisted("jti-live"));
    CHECK(engine.count("SELECT count(*) FROM one_time_tokens") == 1);
    CHECK(store.consume_one_time_token("t-live", TokenPurpose::reset, kNow, nullptr) ==
          ConsumeResult::ok);

    PurgeCounts again = store.purge_expired(kNow, kNow - 100000);
    CHECK(again.sessions == 0);
    CHECK(again.blacklist == 0);
    CHECK(again.one_time_tokens == 0);
  });
}

TEST_CASE("delete_user removes the user with their sessions and one-time tokens") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    REQUIRE(store.insert_user(make_user("u2", "bob", "bob@example.com")) == InsertUserResult::ok);
    store.insert_session(make_session("a1", "u1", "r1", kNow + 3600));
    store.insert_session(make_session("b1", "u2", "r2", kNow + 3600));
    store.insert_one_time_token({"t1", "u1", TokenPurpose::reset, kNow + 900});

    CHECK(store.delete_user("u1"));
    CHECK_FALSE(store.find_user_by_id("u1").has_value());
    CHECK_FALSE(store.find_session("a1").has_value());
    CHECK(store.find_session("b1").has_value());
    CHECK(engine.count("SELECT count(*) FROM one_time_tokens") == 0);
    CHECK_FALSE(store.delete_user("u1"));
    CHECK_FALSE(store.delete_user("nobody"));
    // The name and the address are free again.
    CHECK(store.insert_user(make_user("u3", "ANN", "ann@example.com")) == InsertUserResult::ok);
  });
}

TEST_CASE("list_users returns every user in creation order") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    User b = make_user("b", "second", std::nullopt);
    b.created_at = kNow + 1;
    User a = make_user("a", "first", std::nullopt);
    a.created_at = kNow;
    REQUIRE(store.insert_user(b) == InsertUserResult::ok);
    REQUIRE(store.insert_user(a) == InsertUserResult::ok);
    auto users = store.list_users();
    REQUIRE(users.size() == 2);
    CHECK(users[0].username == "first");
    CHECK(users[1].username == "second");
  });
}

TEST_CASE("ping answers while writes can commit, and says why not while another holds the lock") {
  latch::test::TempDir dir;
  const std::string path = dir.file("auth.db");
  SqliteStore store(path);
  CHECK_NOTHROW(store.ping());
  sqlite3 *other = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  CHECK_THROWS_AS(store.ping(), StoreError); // within its short busy time-out, not 5 s
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  CHECK_NOTHROW(store.ping());
}

TEST_CASE("a user, its first session and its confirmation token commit together or not at all") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    store.insert_session(make_session("taken", "u1", "r1", kNow + 3600));
    const Session first = make_session("s-bob", "u2", "r2", kNow + 3600);
    const OneTimeToken confirm{"hash-bob", "u2", TokenPurpose::verify_email, kNow + 600};
    REQUIRE(store.insert_user(make_user("u2", "bob", "bob@example.com"), &first, &confirm) ==
            InsertUserResult::ok);
    CHECK(store.find_session("s-bob").has_value());
    CHECK(engine.count("SELECT count(*) FROM one_time_tokens WHERE user_id = 'u2'") == 1);
    // A session that cannot be inserted (its id is taken): the user is not made either.
    const Session clash = make_session("taken", "u3", "r3", kNow + 3600);
    CHECK_THROWS_AS(store.insert_user(make_user("u3", "carol", "carol@example.com"), &clash),
                    StoreError);
    CHECK_FALSE(store.find_user_by_id("u3").has_value());
  });
}

TEST_CASE("purge_expired deletes thousands of rows batch by batch, and the feed does not grow") {
  latch::test::TempDir dir;
  const std::string path = dir.file("auth.db");
  SqliteStore store(path);
  REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
  sqlite3 *db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db,
                       "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < "
                       "2345) INSERT INTO sessions(id, user_id, api, refresh_jti, created_at, "
                       "expires_at) SELECT 'old-' || i, 'u1', 'v1', NULL, 1, 2 FROM n",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  PurgeCounts c = store.purge_expired(kNow, kNow);
  CHECK(c.sessions == 2345);
  CHECK(count_rows(path, "SELECT count(*) FROM sessions") == 0);
  CHECK(count_rows(path, "SELECT count(*) FROM changes WHERE key LIKE 'old-%' AND kind = 1") ==
        2345); // their inserts are in the feed; their purge is not
}

TEST_CASE("rotate_refresh refuses a token naming another user than the session's") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    REQUIRE(store.insert_user(make_user("u2", "bob", "bob@example.com")) == InsertUserResult::ok);
    store.insert_session(make_session("s1", "u1", "jti-1", kNow + 3600));
    CHECK(rotate(store, "s1", "u2", "jti-1", "jti-2", kNow + 3600, kNow) == RotateResult::gone);
    CHECK(store.find_session("s1")->refresh_jti == "jti-1");
    CHECK(rotate(store, "s1", "u1", "jti-1", "jti-2", kNow + 3600, kNow) == RotateResult::rotated);
  });
}

TEST_CASE("a session whose user row was deleted without the cascade is no session") {
  latch::test::TempDir dir;
  const std::string path = dir.file("auth.db");
  SqliteStore store(path);
  REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
  store.insert_session(make_session("s1", "u1", "jti-1", kNow + 3600));
  {
    // As the sqlite3 shell does by default: foreign keys off, so the session row stays.
    sqlite3 *db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    REQUIRE(sqlite3_exec(db, "PRAGMA foreign_keys = OFF; DELETE FROM users WHERE id = 'u1';",
                         nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  CHECK(count_rows(path, "SELECT COUNT(*) FROM sessions") == 1);
  CHECK_FALSE(store.find_session("s1").has_value());
  CHECK(rotate(store, "s1", "u1", "jti-1", "jti-2", kNow + 3600, kNow) == RotateResult::gone);
}

TEST_CASE("list_sessions returns a user's sessions, revoked ones included, and no one else's") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    REQUIRE(store.insert_user(make_user("u2", "bob", "bob@example.com")) == InsertUserResult::ok);
    store.insert_session(make_session("s1", "u1", "r1", kNow + 100));
    store.insert_session(make_session("s2", "u1", "", kNow + 200));
    store.insert_session(make_session("s3", "u2", "r3", kNow + 100));
    store.revoke_session("s2", kNow);
    auto sessions = store.list_sessions("u1");
    REQUIRE(sessions.size() == 2);
    CHECK(sessions[0].id == "s1");
    CHECK(sessions[0].refresh_jti == "r1");
    CHECK_FALSE(sessions[0].revoked);
    CHECK(sessions[0].expires_at == kNow + 100);
    CHECK(sessions[1].id == "s2");
    CHECK(sessions[1].revoked);
    CHECK(sessions[1].api == "picflux");
    CHECK(store.list_sessions("nobody").empty());
  });
}

TEST_CASE("revoke_user_sessions ends every live session of one user and counts them") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    REQUIRE(store.insert_user(make_user("u2", "bob", "bob@example.com")) == InsertUserResult::ok);
    store.insert_session(make_session("s1", "u1", "r1", kNow + 100));
    store.insert_session(make_session("s2", "u1", "r2", kNow + 100));
    store.insert_session(make_session("s3", "u1", "r3", kNow + 100));
    store.insert_session(make_session("s4", "u2", "r4", kNow + 100));
    store.revoke_session("s3", kNow);
    CHECK(store.revoke_user_sessions("u1", kNow + 1) == 2);
    for (const char *id : {"s1", "s2", "s3"}) {
      CAPTURE(id);
      CHECK(store.find_session(id)->revoked);
    }
    CHECK_FALSE(store.find_session("s4")->revoked);
    CHECK(store.revoke_user_sessions("u1", kNow + 2) == 0);
  });
}

TEST_CASE("replace_password sets the hash, ends the user's sessions and spends reset links") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    REQUIRE(store.insert_user(make_user("u2", "bob", "bob@example.com")) == InsertUserResult::ok);
    store.insert_session(make_session("s1", "u1", "r1", kNow + 100));
    store.insert_session(make_session("s2", "u2", "r2", kNow + 100));
    store.insert_one_time_token({"reset-hash", "u1", TokenPurpose::reset, kNow + 100});
    store.insert_one_time_token({"verify-hash", "u1", TokenPurpose::verify_email, kNow + 100});
    CHECK(store.replace_password("u1", "new-hash", kNow + 5));
    auto u = store.find_user_by_id("u1");
    REQUIRE(u.has_value());
    CHECK(u->password_hash == "new-hash");
    CHECK(u->updated_at == kNow + 5);
    CHECK(store.find_session("s1")->revoked);
    CHECK_FALSE(store.find_session("s2")->revoked);
    CHECK(store.consume_one_time_token("reset-hash", TokenPurpose::reset, kNow, nullptr) ==
          ConsumeResult::invalid);
    CHECK(store.consume_one_time_token("verify-hash", TokenPurpose::verify_email, kNow, nullptr) ==
          ConsumeResult::ok);
    CHECK_FALSE(store.replace_password("nobody", "x", kNow));
    CHECK(store.find_user_by_id("u2")->password_hash != "x");
  });
}

TEST_CASE("SQLite: wait_for_changes returns when another connection commits") {
  latch::test::TempDir dir;
  SqliteStore follower(dir.file("auth.db")), other(dir.file("auth.db"));
  REQUIRE(other.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
  follower.wait_for_changes(std::chrono::milliseconds(1)); // what is committed so far is seen
  const auto position = follower.snapshot(0).position;
  auto woke = std::async(std::launch::async, [&] {
    follower.wait_for_changes(std::chrono::seconds(60));
    return true;
  });
  other.insert_session(make_session("s1", "u1", "r1", kNow + 3600));
  // A liveness check, not a speed one: without seeing the commit it would wait 60 s.
  REQUIRE(woke.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  auto changes = follower.changes_since(position, 100);
  REQUIRE(changes);
  REQUIRE(changes->size() == 1);
  CHECK(changes->front().key == "s1");
}

TEST_CASE("backup writes a 0600 copy that opens alone, and overwrites only when asked") {
  latch::test::TempDir dir;
  SqliteStore store(dir.file("auth.db"));
  REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
  const std::string copy = dir.file("copy.db");
  REQUIRE(store.backup(copy, false));
  struct stat st {};
  REQUIRE(::stat(copy.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK_FALSE(fs::exists(copy + "-wal"));
  CHECK(count_rows(copy, "SELECT count(*) FROM users WHERE username = 'ann'") == 1);
  CHECK(count_rows(copy, "PRAGMA user_version") == migrations_in_schema());

  REQUIRE(store.insert_user(make_user("u2", "bob", "bob@example.com")) == InsertUserResult::ok);
  CHECK_FALSE(store.backup(copy, false)); // refused: the old copy stays
  CHECK(count_rows(copy, "SELECT count(*) FROM users") == 1);
  CHECK(store.backup(copy, true));
  CHECK(count_rows(copy, "SELECT count(*) FROM users") == 2);
  // No temporary file is left beside it.
  int files = 0;
  for (const auto &entry : fs::directory_iterator(dir.path()))
    if (entry.path().filename().string().rfind("copy.db", 0) == 0) ++files;
  CHECK(files == 1);
  CHECK_THROWS_AS(store.backup(dir.file("no/such/dir/copy.db"), false), StoreError);
}

// --- the outbox -------------------------------------------------------------------------------

namespace {

// A reset mail whose link ends in "token=", for the token row token_hash.
OutgoingMail reset_mail(const std::string &to, const std::string &token_hash,
                        std::int64_t link_expires_at) {
  OutgoingMail m;
  m.recipient = to;
  m.subject = "Reset your password";
  m.body = "Open https://auth.example/reset-password?token=";
  m.token_at = m.body.size();
  m.body += "\nwithin 15 minutes.\n";
  m.token_hash = token_hash;
  m.link_expires_at = link_expires_at;
  m.created_at = kNow;
  return m;
}

} // namespace

TEST_CASE("a queued mail is taken once under a lease, and taking it gives its token a new hash") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    const OutgoingMail sent = reset_mail("ann@example.com", "hash-0", kNow + 900);
    store.insert_one_time_token({"hash-0", "u1", TokenPurpose::reset, kNow + 900}, &sent);

    auto listed = store.list_mail(kNow);
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].state == MailState::queued);
    CHECK(listed[0].link_live);
    CHECK(listed[0].attempts == 0);
    CHECK(store.mail_counts(kNow).queued == 1);

    auto taken = store.take_mail(kNow, 40, "hash-1");
    REQUIRE(taken.has_value());
    CHECK(taken->attempts == 1);
    CHECK(taken->link_live);
    CHECK(taken->mail.recipient == "ann@example.com");
    CHECK(taken->mail.body == sent.body); // the row holds no token; the sender writes it in
    CHECK(taken->mail.token_at == sent.token_at);
    CHECK(taken->mail.token_hash == "hash-1");
    // The token the mail was queued with no longer works; the sender's does.
    CHECK(engine.count("SELECT count(*) FROM one_time_tokens WHERE token_hash = 'hash-0'") == 0);
    CHECK(engine.count("SELECT count(*) FROM one_time_tokens WHERE token_hash = 'hash-1' AND "
                       "expires_at = " +
                       std::to_string(kNow + 900)) == 1);
    CHECK(engine.count("SELECT count(*) FROM outbox WHERE token_hash = 'hash-1'") == 1);

    // Leased: no other sender takes it, and the list says it is being sent.
    CHECK_FALSE(store.take_mail(kNow + 39, 40, "hash-x").has_value());
    CHECK(store.list_mail(kNow)[0].state == MailState::sending);
    CHECK(store.mail_counts(kNow).sending == 1);

    // A temporary failure: due again at its backoff, and then taken with yet another token.
    CHECK(store.mail_deferred(taken->id, 1, kNow + 30, "SMTP 451", kNow + 1));
    CHECK(store.list_mail(kNow + 1)[0].last_error == "SMTP 451");
    CHECK_FALSE(store.take_mail(kNow + 29, 40, "hash-x").has_value());
    auto again = store.take_mail(kNow + 30, 40, "hash-2");
    REQUIRE(again.has_value());
    CHECK(again->attempts == 2);
    CHECK(engine.count("SELECT count(*) FROM one_time_tokens WHERE token_hash = 'hash-2'") == 1);
    // A sender whose lease ran out cannot overwrite what the later attempt decides.
    CHECK_FALSE(store.mail_deferred(again->id, 1, kNow + 999, "late", kNow + 31));
    CHECK_FALSE(store.mail_failed(again->id, 1, "late", kNow + 31));

    store.mail_sent(again->id);
    CHECK(store.list_mail(kNow + 31).empty());
    CHECK(store.mail_counts(kNow + 31).queued == 0);
    CHECK(store.consume_one_time_token("hash-2", TokenPurpose::reset, kNow + 32, nullptr) ==
          ConsumeResult::ok);
  });
}

TEST_CASE("a lease that runs out or is released makes the mail due again") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    const OutgoingMail m = reset_mail("ann@example.com", "hash-0", kNow + 900);
    store.insert_one_time_token({"hash-0", "u1", TokenPurpose::reset, kNow + 900}, &m);
    auto first = store.take_mail(kNow, 40, "hash-1");
    REQUIRE(first.has_value());
    // The sender died: another takes it once the lease has run out.
    auto second = store.take_mail(kNow + 40, 40, "hash-2");
    REQUIRE(second.has_value());
    CHECK(second->attempts == 2);
    // A stopping sender releases it: due at once.
    store.release_mail(second->id, second->attempts);
    auto third = store.take_mail(kNow + 41, 40, "hash-3");
    REQUIRE(third.has_value());
    CHECK(third->attempts == 3);
  });
}

TEST_CASE("a token and the mail carrying its link are written together or not at all") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    store.insert_one_time_token({"taken", "u1", TokenPurpose::reset, kNow + 900});
    const OutgoingMail m = reset_mail("ann@example.com", "taken", kNow + 900);
    CHECK_THROWS_AS(
        store.insert_one_time_token({"taken", "u1", TokenPurpose::reset, kNow + 900}, &m),
        StoreError);
    CHECK(engine.count("SELECT count(*) FROM outbox") == 0);

    // A sign-up refused as taken writes neither its confirmation token nor the mail.
    const OneTimeToken confirm{"confirm-1", "u2", TokenPurpose::verify_email, kNow + 86400};
    const OutgoingMail mail = reset_mail("ann@example.com", "confirm-1", kNow + 86400);
    CHECK(store.insert_user(make_user("u2", "Ann", "other@example.com"), nullptr, &confirm,
                            &mail) == InsertUserResult::username_taken);
    CHECK(engine.count("SELECT count(*) FROM outbox") == 0);
    CHECK(engine.count("SELECT count(*) FROM one_time_tokens") == 1);
    CHECK(store.insert_user(make_user("u2", "bob", "bob@example.com"), nullptr, &confirm, &mail) ==
          InsertUserResult::ok);
    CHECK(engine.count("SELECT count(*) FROM outbox WHERE token_hash = 'confirm-1'") == 1);
  });
}

TEST_CASE("a mail whose link expired or whose token was used is dropped unsent, never taken") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    REQUIRE(store.insert_user(make_user("u2", "bob", "bob@example.com")) == InsertUserResult::ok);
    const OutgoingMail soon = reset_mail("ann@example.com", "ann-0", kNow + 60);
    store.insert_one_time_token({"ann-0", "u1", TokenPurpose::reset, kNow + 60}, &soon);
    const OutgoingMail used = reset_mail("bob@example.com", "bob-0", kNow + 900);
    store.insert_one_time_token({"bob-0", "u2", TokenPurpose::reset, kNow + 900}, &used);
    const OutgoingMail later = reset_mail("bob@example.com", "bob-1", kNow + 900);
    store.insert_one_time_token({"bob-1", "u2", TokenPurpose::reset, kNow + 900}, &later);

    CHECK(store.drop_undeliverable(kNow).empty());
    // bob resets with the first link (another channel, say): both his links are spent.
    REQUIRE(store.reset_password("bob-0", "$argon2id$new", kNow + 1, nullptr) == ConsumeResult::ok);
    auto listed = store.list_mail(kNow + 60);
    REQUIRE(listed.size() == 3);
    for (const auto &m : listed)
      CHECK_FALSE(m.link_live);

    auto dropped = store.drop_undeliverable(kNow + 60);
    CHECK(dropped.size() == 3);
    CHECK_FALSE(store.take_mail(kNow + 60, 40, "x").has_value());
    CHECK(store.list_mail(kNow + 60).empty());
  });
}

TEST_CASE("a failed mail waits for an operator: retry makes it due afresh, drop deletes it") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    for (int i = 0; i < 3; ++i) {
      const std::string hash = "hash-" + std::to_string(i);
      const OutgoingMail m = reset_mail("ann@example.com", hash, kNow + 86400);
      store.insert_one_time_token({hash, "u1", TokenPurpose::reset, kNow + 86400}, &m);
    }
    auto taken = store.take_mail(kNow, 40, "sent-0");
    REQUIRE(taken.has_value());
    CHECK(store.mail_failed(taken->id, taken->attempts, "SMTP 550", kNow + 1));
    MailCounts c = store.mail_counts(kNow + 1);
    CHECK(c.queued == 2);
    CHECK(c.failed == 1);
    auto failed = store.list_mail(kNow + 1)[0];
    CHECK(failed.id == taken->id);
    CHECK(failed.state == MailState::failed);
    CHECK(failed.last_error == "SMTP 550");
    // Not taken again by itself...
    store.drop_mail(taken->id + 1);
    store.drop_mail(taken->id + 2);
    CHECK_FALSE(store.take_mail(kNow + 3600, 40, "x").has_value());
    // ...until an operator says so: queued, due now, its attempts counted afresh.
    CHECK(store.retry_mail(taken->id, kNow + 7200) == 1);
    auto retried = store.list_mail(kNow + 7200)[0];
    CHECK(retried.state == MailState::queued);
    CHECK(retried.attempts == 0);
    CHECK(retried.queued_at == kNow + 7200);
    auto again = store.take_mail(kNow + 7200, 40, "sent-1");
    REQUIRE(again.has_value());
    CHECK(again->attempts == 1);
    CHECK(store.retry_mail(again->id, kNow + 7201) == 0); // held by a sender: left to it
    CHECK(store.retry_mail(std::nullopt, kNow + 7300) == 1);
    CHECK(store.drop_mail(std::int64_t{999}) == 0);
    CHECK(store.drop_mail(again->id) == 1);
    CHECK(engine.count("SELECT count(*) FROM outbox") == 0);
  });
}

TEST_CASE("purge_expired deletes dead mail and failed mail after a week, and nothing else") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    REQUIRE(store.insert_user(make_user("u1", "ann", "ann@example.com")) == InsertUserResult::ok);
    const OutgoingMail dead = reset_mail("ann@example.com", "dead", kNow + 10);
    store.insert_one_time_token({"dead", "u1", TokenPurpose::verify_email, kNow + 10}, &dead);
    const OutgoingMail live = reset_mail("ann@example.com", "live", kNow + 30 * 86400);
    store.insert_one_time_token({"live", "u1", TokenPurpose::verify_email, kNow + 30 * 86400},
                                &live);
    const OutgoingMail failing = reset_mail("ann@example.com", "failing", kNow + 30 * 86400);
    store.insert_one_time_token({"failing", "u1", TokenPurpose::verify_email, kNow + 30 * 86400},
                                &failing);
    auto taken = store.take_mail(kNow, 40, "dead-1"); // the oldest: "dead"
    REQUIRE(taken.has_value());
    store.release_mail(taken->id, taken->attempts);
    for (;;) { // fail the third
      auto m = store.take_mail(kNow + 1, 40, "next-" + std::to_string(taken->attempts++));
      REQUIRE(m.has_value());
      if (m->id == taken->id + 2) {
        REQUIRE(store.mail_failed(m->id, m->attempts, "SMTP 550", kNow + 1));
        break;
      }
      store.mail_deferred(m->id, m->attempts, kNow + 3600, "SMTP 451", kNow + 1);
    }
    CHECK(store.purge_expired(kNow + 20, kNow - 100000).mail == 1); // the dead link's
    CHECK(store.list_mail(kNow + 20).size() == 2);
    CHECK(store.purge_expired(kNow + 8 * 86400, kNow - 100000).mail == 1); // the failed one
    auto left = store.list_mail(kNow + 8 * 86400);
    REQUIRE(left.size() == 1);
    CHECK(left[0].state == MailState::queued);
  });
}

TEST_CASE("sign-in failure counts add up across stores on one database, per window") {
  for_each_engine([](Engine &engine) {
    Store &store = *engine.store;
    auto other = engine.open_again(); // another server on the same database
    auto counts = [&](Store &s, std::int64_t now) {
      std::map<std::string, std::pair<int, std::int64_t>> out;
      for (const FailureCount &f : s.failure_counts("g", "a1", now))
        out[f.item] = {f.count, f.expires_at};
      return out;
    };
    CHECK(counts(store, kNow).empty());
    store.add_failure("g", "a1", "s1", kNow, 900);
    other->add_failure("g", "a1", "s1", kNow + 5, 900);
    other->add_failure("g", "a2", "s1", kNow + 6, 900);
    auto seen = counts(store, kNow + 10);
    CHECK(seen[""] ==
          std::pair<int, std::int64_t>(3, kNow + 900)); // the identifier's, every address
    CHECK(seen["a1"] == std::pair<int, std::int64_t>(2, kNow + 900));
    CHECK(counts(*other, kNow + 10) == seen);
    // A window that ended counts nothing, and the next failure starts one.
    CHECK(counts(store, kNow + 900).empty());
    store.add_failure("g", "a1", "s2", kNow + 900, 900);
    seen = counts(*other, kNow + 901);
    CHECK(seen[""] == std::pair<int, std::int64_t>(1, kNow + 1800));
    CHECK(seen["a1"] == std::pair<int, std::int64_t>(1, kNow + 1800));
    for (const FailureCount &f : store.failure_counts("g", "a1", kNow + 901))
      CHECK(f.stamp == "s2");
    other->restamp_failures({"g"}, "s2", "s3");
    for (const FailureCount &f : store.failure_counts("g", "a1", kNow + 901))
      CHECK(f.stamp == "s3");
    // Cleared: one (group, item); lifted: the whole group, and no other.
    store.add_failure("h", "a1", "", kNow + 901, 900);
    other->clear_failures("g", "a1");
    seen = counts(store, kNow + 902);
    CHECK(seen.size() == 1);
    CHECK(seen.count(""));
    store.add_failure("g", "a9", "s3", kNow + 902, 900);
    store.lift_failures({"g"});
    CHECK(engine.count("SELECT count(*) FROM sign_in_failures WHERE group_key = 'g'") == 0);
    CHECK(store.failure_counts("h", "a1", kNow + 902).size() == 2);
    // The purge deletes the counts whose window ended, and only those.
    store.add_failure("k", "a1", "", kNow + 1500, 900);
    CHECK(store.purge_expired(kNow + 1801, kNow - 100000).sign_in_failures == 2);
    CHECK(engine.count("SELECT count(*) FROM sign_in_failures") == 2);
  });
}
