// Unit tests for auth/identity: username keys, refusals, confusable skeletons, the WHATWG email
// rule, and the look-alike accounts they keep apart (over a real store).
#include "auth/identity.h"
#include "auth/service.h"
#include "db/schema.h"
#include "db/sqlite_store.h"

#include "support/temp_dir.h"

#include <doctest/doctest.h>

#include <sqlite3.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace latch;

namespace {

std::string key_of(const std::string &username) {
  Canonical c = canonical_username(username);
  REQUIRE_MESSAGE(bool(c), "refused: " << visible_username(username) << " " << describe(c.refusal));
  return c.key;
}

IdentityRefusal refusal_of(const std::string &username) {
  return canonical_username(username).refusal;
}

std::string repeat(const std::string &s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i)
    out += s;
  return out;
}

// A user as every sign-up makes one (set_identity), inserted into store.
db::InsertUserResult add(db::Store &store, const std::string &username,
                         std::optional<std::string> email = std::nullopt) {
  db::User u;
  REQUIRE(set_identity(u, username, email).ok());
  static int n = 0;
  u.id = "id-" + std::to_string(++n);
  u.password_hash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA";
  return store.insert_user(u);
}

// Runs SQL on the database at path through a connection of its own, as the sqlite3 CLI would.
void exec_elsewhere(const std::string &path, const std::string &sql) {
  sqlite3 *db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  char *err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string message = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE_MESSAGE(rc == SQLITE_OK, message);
}

// A database as the release before migration 3 left it (user_version 2), with these users
// (username, created_at), inserted as that release did: the username as typed, no key.
void make_old_database(const std::string &path,
                       const std::vector<std::pair<std::string, int>> &users) {
  std::string schema = db::kSchemaSql;
  std::string sql = "BEGIN;" + schema.substr(0, schema.find("-- migration 3"));
  int n = 0;
  for (const auto &[name, created] : users) {
    ++n;
    sql += "INSERT INTO users(id, username, email, password_hash, created_at, updated_at) "
           "VALUES ('old-" +
           std::to_string(n) + "', '" + name + "', NULL, 'x', " + std::to_string(created) + ", 0);";
  }
  exec_elsewhere(path, sql + "PRAGMA user_version = 2; COMMIT;");
}

std::string id_of(db::Store &store, const std::string &typed) {
  auto u = lookup_username(store, typed);
  return u ? u->id : "nobody";
}

bool reported(const std::vector<db::UsernameConflict> &all, const std::string &id,
              const std::string &other_id) {
  return std::any_of(all.begin(), all.end(),
                     [&](const auto &c) { return c.id == id && c.other_id == other_id; });
}

} // namespace

TEST_CASE("case and width variants of a username have one key") {
  for (const char *name :
       {"admin", "ADMIN", "Admin", "aDmIn", "ａｄｍｉｎ", "ＡＤＭＩＮ", "Ａdmin"}) {
    CAPTURE(name);
    CHECK(key_of(name) == "admin");
  }
  // Full case folding, not only ASCII: German sharp s, Greek final sigma, the Kelvin sign.
  CHECK(key_of("STRASSE") == key_of("straße"));
  CHECK(key_of("ΟΔΟΣ") == key_of("οδος"));
  CHECK(key_of("οδος") == key_of("οδοσ"));
  CHECK(key_of("\u212A") == "k");
  // Compatibility forms: ligatures, roman numerals, superscripts.
  CHECK(key_of("\uFB01le") == "file");
  CHECK(key_of("\u216B") == "xii");
  CHECK(key_of("x\u00B2") == "x2");
}

TEST_CASE("precomposed and decomposed spellings have one key") {
  CHECK(key_of("caf\u00E9") == key_of("cafe\u0301"));
  CHECK(key_of("CAF\u00C9") == key_of("cafe\u0301"));
  CHECK(key_of("\u00C4bc@example.com") == key_of("\u00E4bc@example.com"));
  CHECK(key_of("A\u0308bc@example.com") == key_of("\u00E4bc@example.com"));
  // Hangul syllables and their jamo.
  CHECK(key_of("\uD55C") == key_of("\u1112\u1161\u11AB"));
}

TEST_CASE("invisible, bidi-control, whitespace and control characters are refused, not dropped") {
  struct Case {
    std::string name;
    IdentityRefusal why;
  };
  const std::vector<Case> cases = {
      {"adm\u200Bin", IdentityRefusal::invisible},     // zero-width space
      {"admin\u200B", IdentityRefusal::invisible},     // ... at the end
      {"\u200Badmin", IdentityRefusal::invisible},     // ... at the start
      {"adm\u200Din", IdentityRefusal::invisible},     // zero-width joiner
      {"adm\u200Cin", IdentityRefusal::invisible},     // zero-width non-joiner
      {"adm\u2060in", IdentityRefusal::invisible},     // word joiner
      {"adm\u00ADin", IdentityRefusal::invisible},     // soft hyphen
      {"\uFEFFadmin", IdentityRefusal::invisible},     // BOM / zero-width no-break space
      {"adm\u034Fin", IdentityRefusal::invisible},     // combining grapheme joiner
      {"admin\uFE0F", IdentityRefusal::invisible},     // variation selector
      {"admin\U000E0041", IdentityRefusal::invisible}, // tag character
      {"\u3164admin", IdentityRefusal::invisible},     // Hangul filler
      {"adm\u202Ein", IdentityRefusal::bidi_control},  // right-to-left override
      {"\u202Dadmin", IdentityRefusal::bidi_control},  // left-to-right override
      {"admin\u2066", IdentityRefusal::bidi_control},  // left-to-right isolate
      {"adm\u200Fin", IdentityRefusal::bidi_control},  // right-to-left mark
      {"adm\u061Cin", IdentityRefusal::bidi_control},  // Arabic letter mark
      {"adm\u00A0in", IdentityRefusal::whitespace},    // no-break space
      {"adm in", IdentityRefusal::whitespace},
      {"admin ", IdentityRefusal::whitespace},
      {"adm\u3000in", IdentityRefusal::whitespace}, // ideographic space
      {"adm\u2028in", IdentityRefusal::whitespace}, // line separator
      {"adm\u0085in", IdentityRefusal::whitespace}, // next line (also a control)
      {"adm\tin", IdentityRefusal::whitespace},
      {"adm\nin", IdentityRefusal::whitespace},
      {std::string("adm\0in", 6), IdentityRefusal::control},
      {"adm\x01in", IdentityRefusal::control},
      {"adm\x7Fin", IdentityRefusal::control},
      {"adm\u0080in", IdentityRefusal::control},
      {"a\u00A8", IdentityRefusal::whitespace},     // NFKC makes it a space and a diaeresis
      {"adm\uE000in", IdentityRefusal::unassigned}, // private use
      {"adm\U0010FFFDin", IdentityRefusal::unassigned},
      {"adm\uFDD0in", IdentityRefusal::unassigned}, // noncharacter
      {"adm\u0378in", IdentityRefusal::unassigned}, // unassigned
      {"adm\xFFin", IdentityRefusal::not_utf8},
      {"adm\xC0\xAFin", IdentityRefusal::not_utf8},     // overlong "/"
      {"adm\xED\xA0\x80in", IdentityRefusal::not_utf8}, // an encoded surrogate
      {"adm\xE2\x80", IdentityRefusal::not_utf8},       // truncated
      {"", IdentityRefusal::empty},
  };
  for (const auto &c : cases) {
    CAPTURE(visible_username(c.name));
    Canonical result = canonical_username(c.name);
    CHECK_FALSE(bool(result));
    CHECK(result.refusal == c.why);
    CHECK(result.key.empty());
    CHECK_FALSE(valid_username(c.name));
  }
}

TEST_CASE("usernames are 1 to 150 characters, counted as typed") {
  CHECK(key_of("a") == "a");
  CHECK(key_of(repeat("a", 150)) == repeat("a", 150));
  CHECK(refusal_of(repeat("a", 151)) == IdentityRefusal::too_long);
  CHECK(key_of(repeat("\u00E9", 150)) == repeat("\u00E9", 150)); // 300 bytes, 150 characters
  CHECK(refusal_of(repeat("\u00E9", 151)) == IdentityRefusal::too_long);
  CHECK(refusal_of(repeat("\U0001F600", 151)) == IdentityRefusal::too_long);
  CHECK(bool(canonical_username(repeat("\U0001F600", 150))));
  CHECK(refusal_of(std::string(100000, 'a')) == IdentityRefusal::too_long);
  // Names that were always fine stay fine: punctuation, digits, an @, other scripts.
  for (const char *name : {"ann.lee", "ann_lee-2", "ann@example.com", "\u0436\u0435\u043D\u044F",
                           "\u5C71\u7530", "\u0645\u062D\u0645\u062F", "x_\U0001F600"}) {
    CAPTURE(name);
    CHECK(valid_username(name));
  }
}

TEST_CASE("the key of a key is itself") {
  for (const char *name : {"admin",
                           "ＡＤＭＩＮ",
                           "cafe\u0301",
                           "CAF\u00C9",
                           "stra\u00DFe",
                           "\uFB01le",
                           "\u216B",
                           "\u0130stanbul",
                           "\u01C5",
                           "\u1E9E",
                           "\u3377",
                           "\u337F",
                           "\u2474",
                           "\u0345x",
                           "\u1FB3",
                           "\u0DDA",
                           "\u0F73",
                           "\u0436\u0415",
                           "\u1112\u1161\u11AB",
                           "\U0001D400bc"}) {
    CAPTURE(name);
    const std::string once = key_of(name);
    CHECK(key_of(once) == once);
    CHECK(username_skeleton(key_of(once)) == username_skeleton(once));
  }
}

TEST_CASE("confusable keys share a skeleton, other names do not") {
  // Cyrillic a (U+0430) and Latin a: two keys, one skeleton.
  CHECK(key_of("\u0430dmin") != key_of("admin"));
  CHECK(username_skeleton(key_of("\u0430dmin")) == username_skeleton(key_of("admin")));
  // Cyrillic p and a in "paypal", Greek omicron in "google".
  CHECK(username_skeleton(key_of("\u0440\u0430yp\u0430l")) == username_skeleton(key_of("paypal")));
  CHECK(username_skeleton(key_of("g\u03BF\u03BFgle")) == username_skeleton(key_of("google")));
  // Within Latin too, as UTS #39 lists them: "rn" and "m", "1" and "l".
  CHECK(username_skeleton(key_of("adrnin")) == username_skeleton(key_of("admin")));
  CHECK(username_skeleton(key_of("paypa1")) == username_skeleton(key_of("paypal")));
  CHECK(username_skeleton(key_of("admin")) != username_skeleton(key_of("bob")));
  CHECK(username_skeleton(key_of("anna")) != username_skeleton(key_of("anne")));
}

TEST_CASE("each look-alike of admin is refused as a second account") {
  db::SqliteStore store(":memory:", db::SqliteStore::Open::create, username_rule());
  REQUIRE(add(store, "admin", std::string("root@example.com")) == db::InsertUserResult::ok);
  // The same key or the same skeleton: taken.
  for (const char *name :
       {"ADMIN", "Admin", "ａｄｍｉｎ", "ＡＤＭＩＮ", "\u0430dmin", "adrnin", "\u0430\u0501min"}) {
    CAPTURE(name);
    CHECK(add(store, name) == db::InsertUserResult::username_taken);
  }
  // Invisible, bidi and space variants do not even make a key.
  for (const char *name :
       {"adm\u200Bin", "admin\u00A0", "adm\u00ADin", "\uFEFFadmin", "adm\u202Ein"}) {
    CAPTURE(visible_username(name));
    db::User u;
    CHECK(set_identity(u, name, std::nullopt).error().code == ErrorCode::invalid_field);
  }
  CHECK(store.list_users().size() == 1);
}

TEST_CASE("precomposed and decomposed, upper- and lower-case variants are one account") {
  db::SqliteStore store(":memory:", db::SqliteStore::Open::create, username_rule());
  REQUIRE(add(store, "caf\u00E9") == db::InsertUserResult::ok);
  CHECK(add(store, "cafe\u0301") == db::InsertUserResult::username_taken);
  CHECK(add(store, "CAF\u00C9") == db::InsertUserResult::username_taken);
  REQUIRE(add(store, "\u00C4bc@example.org") == db::InsertUserResult::ok);
  CHECK(add(store, "\u00E4bc@example.org") == db::InsertUserResult::username_taken);
  CHECK(add(store, "a\u0308bc@example.org") == db::InsertUserResult::username_taken);
  // Lookups find the one account by any of its spellings.
  for (const char *name : {"cafe\u0301", "CAF\u00C9", "ＣＡＦÉ"}) {
    CAPTURE(name);
    auto u = lookup_username(store, name);
    REQUIRE(u.has_value());
    CHECK(u->username == "caf\u00E9"); // stored as typed
  }
  CHECK_FALSE(lookup_username(store, "caf\u00E9\u200B").has_value());
}

TEST_CASE("usernames and emails share one namespace") {
  db::SqliteStore store(":memory:", db::SqliteStore::Open::create, username_rule());
  REQUIRE(add(store, "ann", std::string("ann@example.com")) == db::InsertUserResult::ok);
  // A username equal to another user's email, in any case or width.
  CHECK(add(store, "ann@example.com") == db::InsertUserResult::username_taken);
  CHECK(add(store, "ANN@EXAMPLE.COM") == db::InsertUserResult::username_taken);
  CHECK(add(store, "ａｎｎ@example.com") == db::InsertUserResult::username_taken);
  // An email equal to another user's username.
  REQUIRE(add(store, "bob@example.org") == db::InsertUserResult::ok);
  CHECK(add(store, "carol", std::string("BOB@example.org")) == db::InsertUserResult::email_taken);
  // And the email itself, in another case.
  CHECK(add(store, "dave", std::string("Ann@Example.COM")) == db::InsertUserResult::email_taken);
  CHECK(add(store, "dave", std::string("dave@example.com")) == db::InsertUserResult::ok);
}

TEST_CASE("WHATWG valid email addresses are accepted and lower-cased") {
  struct Case {
    const char *typed, *key;
  };
  for (const Case &c : std::vector<Case>{
           {"user@localhost", "user@localhost"},
           {"a.b+c@example.co.uk", "a.b+c@example.co.uk"},
           {"first.last@sub-domain.example", "first.last@sub-domain.example"},
           {"Ann@Example.COM", "ann@example.com"},
           {"x@1.2.3.4", "x@1.2.3.4"},                   // digits are LDH labels
           {".a..b.@example.com", ".a..b.@example.com"}, // WHATWG allows dots anywhere before @
           {"!#$%&'*+/=?^_`{|}~-@example.com", "!#$%&'*+/=?^_`{|}~-@example.com"},
           {"a@xn--bcher-kva.example", "a@xn--bcher-kva.example"}, // IDN as punycode
       }) {
    CAPTURE(c.typed);
    Canonical k = canonical_email(c.typed);
    REQUIRE(bool(k));
    CHECK(k.key == c.key);
    CHECK(valid_email(c.typed));
    CHECK(canonical_email(k.key).key == k.key); // idempotent
  }
  const std::string label63(63, 'a');
  CHECK(valid_email("u@" + label63 + ".example"));
  CHECK_FALSE(valid_email("u@" + label63 + "a.example"));
}

TEST_CASE("addresses outside the WHATWG rule are refused") {
  for (const char *email : {"a@b..c",
                            "a@-b.c",
                            "a@b-.c",
                            "a b@c.d",
                            "\u00E4bc@x.y",
                            "abc@\u00E4.de",
                            "a@b_c.d",
                            "x@[not valid]",
                            "x@[127.0.0.1]",
                            "\"quoted\"@example.com",
                            "a@b@c.d",
                            "@example.com",
                            "user@",
                            "user@.example.com",
                            "user@example.com.",
                            "plainaddress",
                            "a@b.c\n",
                            " a@b.c",
                            "a@b.c ",
                            "a(b)@c.d",
                            "a,b@c.d",
                            "a<b>@c.d",
                            "ａ@example.com",
                            "a@ｅxample.com",
                            ""}) {
    CAPTURE(email);
    Canonical k = canonical_email(email);
    CHECK_FALSE(bool(k));
    CHECK(k.refusal == IdentityRefusal::not_email);
    CHECK_FALSE(valid_email(email));
  }
  // RFC 5321's lengths: 64 before the @, 254 in all.
  CHECK(valid_email(std::string(64, 'a') + "@example.com"));
  CHECK(canonical_email(std::string(65, 'a') + "@example.com").refusal ==
        IdentityRefusal::too_long);
  const std::string label63(63, 'd');
  const std::string domain = label63 + "." + label63 + "." + label63 + "." + std::string(60, 'd');
  REQUIRE(domain.size() == 252);
  CHECK(valid_email("a@" + domain));
  CHECK(canonical_email("ab@" + domain).refusal == IdentityRefusal::too_long);
}

TEST_CASE("visible_username shows what a reader would not see") {
  CHECK(visible_username("admin") == "admin");
  CHECK(visible_username("caf\u00E9") == "caf\u00E9");
  CHECK(visible_username("ａｄｍｉｎ") == "ａｄｍｉｎ");
  CHECK(visible_username("adm\u200Bin") == "adm\\u{200B}in");
  CHECK(visible_username("adm\u202Ein\n") == "adm\\u{202E}in\\u{000A}");
  CHECK(visible_username("a\\b") == "a\\\\b");
  CHECK(visible_username("a\xFF") == "a\\xFF");
}

TEST_CASE("opening a database from before migration 3 fills the keys; the oldest look-alike "
          "keeps its") {
  latch::test::TempDir dir;
  const std::string path = dir.file("auth.db");
  make_old_database(path, {{"admin", 100},                          // old-1
                           {"\uFF21\uFF24\uFF2D\uFF29\uFF2E", 200}, // old-2: fullwidth ADMIN
                           {"paypal", 300},                         // old-3
                           {"\u0440\u0430yp\u0430l", 400},          // old-4: Cyrillic look-alike
                           {"adm\u200Bin", 500},                    // old-5: refused by the rule
                           {"Bob", 600}});                          // old-6
  db::SqliteStore store(path, db::SqliteStore::Open::create, username_rule());
  CHECK(store.schema_version() == db::SqliteStore::latest_schema_version());
  auto user = [&](const std::string &id) { return *store.find_user_by_id(id); };
  CHECK(user("old-1").username_key == std::optional<std::string>("admin"));
  CHECK_FALSE(user("old-2").username_key.has_value()); // its key is old-1's
  CHECK(user("old-2").username_skeleton == user("old-1").username_skeleton);
  CHECK(user("old-3").username_key == std::optional<std::string>("paypal"));
  CHECK(user("old-4").username_key.has_value()); // another key, the same skeleton
  CHECK_FALSE(user("old-5").username_key.has_value());
  CHECK_FALSE(user("old-5").username_skeleton.has_value());
  CHECK(user("old-6").username_key == std::optional<std::string>("bob"));
  CHECK(user("old-2").username == "\uFF21\uFF24\uFF2D\uFF29\uFF2E"); // nothing merged or renamed

  // Each still signs in by its exact username; other spellings find the key's holder.
  CHECK(id_of(store, "admin") == "old-1");
  CHECK(id_of(store, "ADMIN") == "old-1");
  CHECK(id_of(store, "\uFF21\uFF24\uFF2D\uFF29\uFF2E") == "old-2");
  CHECK(id_of(store, "\uFF41dmin") == "old-1");
  CHECK(id_of(store, "adm\u200Bin") == "old-5");
  CHECK(id_of(store, "BOB") == "old-6");
  CHECK(id_of(store, "\uFF42ob") == "old-6");

  auto conflicts = store.username_conflicts();
  CHECK(conflicts.size() == 3);
  CHECK(reported(conflicts, "old-2", "old-1"));
  CHECK(reported(conflicts, "old-4", "old-3"));
  CHECK(reported(conflicts, "old-5", ""));
  // No new account can take any of those names either.
  db::User u;
  REQUIRE(set_identity(u, "Admin", std::nullopt).ok());
  u.id = "new";
  CHECK(store.identity_taken(u) == db::InsertUserResult::username_taken);
}

TEST_CASE("the back-fill is the same at every open, and a rename resolves a pair") {
  latch::test::TempDir dir;
  const std::string path = dir.file("auth.db");
  make_old_database(path,
                    {{"admin", 100}, {"\uFF41dmin", 200}, {"caf\u00E9", 300}, {"cafe\u0301", 400}});
  { db::SqliteStore first(path); }
  db::SqliteStore store(path, db::SqliteStore::Open::create, username_rule());
  auto conflicts = store.username_conflicts();
  REQUIRE(conflicts.size() == 2);
  CHECK(reported(conflicts, "old-2", "old-1"));
  CHECK(reported(conflicts, "old-4", "old-3"));
  CHECK(conflicts[0].keyless);

  // Renaming the newer one to a name of its own gives it that name's key.
  db::User renamed = *store.find_user_by_id("old-2");
  REQUIRE(set_identity(renamed, "Admin2", std::nullopt).ok());
  CHECK(store.rename_user(renamed, 1000) == db::RenameResult::renamed);
  CHECK(store.find_user_by_id("old-2")->username_key == std::optional<std::string>("admin2"));
  CHECK(id_of(store, "ADMIN2") == "old-2");

  // Renaming the older one away instead frees its key for the look-alike that waited for it.
  db::User older = *store.find_user_by_id("old-3");
  REQUIRE(set_identity(older, "coffee", std::nullopt).ok());
  CHECK(store.rename_user(older, 1000) == db::RenameResult::renamed);
  CHECK(store.find_user_by_id("old-4")->username_key == key_of("caf\u00E9"));
  CHECK(id_of(store, "CAF\u00C9") == "old-4");
  CHECK(store.username_conflicts().empty());

  // A rename is checked as a sign-up: a look-alike of another user's name is taken.
  db::User clash = *store.find_user_by_id("old-4");
  REQUIRE(set_identity(clash, "\u0430dmin2", std::nullopt).ok());
  CHECK(store.rename_user(clash, 1000) == db::RenameResult::taken);
  clash.id = "nobody";
  CHECK(store.rename_user(clash, 1000) == db::RenameResult::not_found);
  // Another spelling of one's own name is no clash.
  db::User self = *store.find_user_by_id("old-2");
  REQUIRE(set_identity(self, "ADMIN2", std::nullopt).ok());
  CHECK(store.rename_user(self, 1000) == db::RenameResult::renamed);
  CHECK(store.find_user_by_id("old-2")->username == "ADMIN2");
}
