// Users imported with the password hashes of the backends Latch replaces (latch user import,
// --from-django, latch user export), against a running server: hashes made by the real
// libraries (Debian's python3-bcrypt, python3-argon2, python3-django, python3-werkzeug and
// mkpasswd) sign in through the APIs, become argon2id at the first sign-in, and a bad file
// imports nothing.
#include "support/latch_process.h"

#include <doctest/doctest.h>

#include <sys/stat.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

using namespace latch::test;

namespace {

// Not ASCII, and with the characters shells and formats care about.
const std::string kPassword = "Tr0ub4dor&3 $été";

std::string slurp(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

// Runs a Python script with Debian's python3 (not a pyenv one without Debian's packages),
// the password in its environment; returns what it printed.
std::string python(const std::string &script, const std::string &password = kPassword) {
  TempDir dir;
  const std::string path = dir.file("script.py"), out = dir.file("out");
  std::ofstream(path) << script;
  setenv("LATCH_TEST_PASSWORD", password.c_str(), 1);
  const int rc = std::system(("/usr/bin/python3 " + path + " > " + out).c_str());
  REQUIRE_MESSAGE(rc == 0, "python3 failed: are TEST_PKGS installed (make test-deps)?");
  return slurp(out);
}

// Hashes of the password made by each library, by name.
json library_hashes(const std::string &password = kPassword) {
  static const std::string script = R"(
import hashlib, json, os, secrets, subprocess
import argon2, bcrypt
from django.conf import settings
settings.configure(PASSWORD_HASHERS=[
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.BCryptPasswordHasher"])
from django.contrib.auth.hashers import make_password
from werkzeug.security import generate_password_hash
pw = os.environ["LATCH_TEST_PASSWORD"]
out = {
  "bcrypt_2b": bcrypt.hashpw(pw.encode(), bcrypt.gensalt(5)).decode(),
  "bcrypt_2a": bcrypt.hashpw(pw.encode(), bcrypt.gensalt(4, prefix=b"2a")).decode(),
  "argon2id": argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=2).hash(pw),
  "argon2i": argon2.PasswordHasher(time_cost=2, memory_cost=512, parallelism=1,
                                   type=argon2.Type.I).hash(pw),
  "werkzeug_pbkdf2_sha256": generate_password_hash(pw, "pbkdf2:sha256"),
  "werkzeug_pbkdf2_sha1": generate_password_hash(pw, "pbkdf2:sha1:50000"),
}
for hasher in ["pbkdf2_sha256", "pbkdf2_sha1", "argon2", "bcrypt_sha256", "bcrypt"]:
    out["django_" + hasher] = make_password(pw, hasher=hasher)
# Werkzeug 3's default scrypt:N:r:p$salt$hex (Debian's Werkzeug 2.2 predates it): the same
# hashlib.scrypt call its _hash_internal makes.
salt = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(16))
out["werkzeug_scrypt"] = "scrypt:32768:8:1$%s$%s" % (salt, hashlib.scrypt(
    pw.encode(), salt=salt.encode(), n=32768, r=8, p=1, maxmem=132 * 32768 * 8).hex())
for method in ["sha-512", "sha-256", "yescrypt"]:
    out["crypt_" + method] = subprocess.run(["mkpasswd", "-s", "-m", method], input=pw,
                                            capture_output=True, text=True, check=True).stdout.strip()
print(json.dumps(out))
)";
  json hashes = json::parse(python(script, password), nullptr, false);
  REQUIRE(hashes.is_object());
  return hashes;
}

CommandResult admin(const LatchProcess &latch, std::vector<std::string> args) {
  args.push_back("--db");
  args.push_back(latch.db_path());
  return run_latch(args);
}

// Writes the lines to a file in dir and returns its path.
std::string jsonl(TempDir &dir, const std::vector<json> &lines) {
  static int n = 0;
  const std::string path = dir.file("users" + std::to_string(++n) + ".jsonl");
  std::ofstream out(path);
  for (const auto &line : lines)
    out << line.dump() << "\n";
  return path;
}

std::string stored_hash(const LatchProcess &latch, const std::string &username) {
  return sql_value(latch.db_path(),
                   "SELECT password_hash FROM users WHERE username = '" + username + "'");
}

int user_count(const LatchProcess &latch) {
  return std::stoi(sql_value(latch.db_path(), "SELECT count(*) FROM users"));
}

// Signs in through the API numbered api (0-4: picflux, v1, flask, simplejwt, envelope).
int sign_in(const LatchProcess &latch, int api, const std::string &username,
            const std::string &email, const std::string &password) {
  switch (api % 5) {
  case 0: return latch.post("/api/auth/signin", {{"email", email}, {"password", password}}).status;
  case 1: return latch.post("/api/v1/login", {{"email", email}, {"password", password}}).status;
  case 2: return latch.post("/auth/login", {{"username", username}, {"password", password}}).status;
  case 3: return latch.post("/auth/token", {{"username", username}, {"password", password}}).status;
  default:
    return latch.post("/api/v1/auth/login", {{"identity", email}, {"password", password}}).status;
  }
}

json user_line(const std::string &username, const std::string &hash) {
  return {
      {"username", username}, {"email", lower(username) + "@example.com"}, {"password_hash", hash}};
}

} // namespace

TEST_CASE("hashes of bcrypt, argon2, Django, Werkzeug and crypt sign in through every API and "
          "become argon2id at the first sign-in; a wrong password changes nothing") {
  LatchProcess latch;
  TempDir dir;
  const json hashes = library_hashes();
  REQUIRE(hashes.size() == 15);
  std::vector<json> lines;
  std::map<std::string, std::string> user_of; // hash name -> username
  for (const auto &[name, hash] : hashes.items()) {
    user_of[name] = unique("imp");
    lines.push_back(user_line(user_of[name], hash.get<std::string>()));
  }
  CommandResult r = admin(latch, {"user", "import", jsonl(dir, lines)});
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(contains(r.output, "imported 15 users"));

  int api = 0;
  for (const auto &[name, hash] : hashes.items()) {
    CAPTURE(name);
    const std::string username = user_of[name], email = lower(username) + "@example.com";
    CHECK(stored_hash(latch, username) == hash.get<std::string>());
    // A wrong password: refused, and the imported hash stays as it was.
    CHECK(sign_in(latch, api, username, email, kPassword + "x") == 401);
    CHECK(sign_in(latch, api + 1, username, email, "Tr0ub4dor&3 $ete") == 401);
    CHECK(stored_hash(latch, username) == hash.get<std::string>());
    // The right one: signed in, and the hash replaced in the same request.
    CHECK(sign_in(latch, api, username, email, kPassword) == 200);
    const std::string upgraded = stored_hash(latch, username);
    CHECK(upgraded.rfind("$argon2id$v=19$m=64,t=1,p=1$", 0) == 0); // the server's cost
    // Then every API signs in with the argon2id hash.
    for (int other = 1; other <= 4; ++other)
      CHECK(sign_in(latch, api + other, username, email, kPassword) == 200);
    CHECK(sign_in(latch, api, username, email, kPassword + "x") == 401);
    CHECK(stored_hash(latch, username) == upgraded);
    ++api;
  }
}

TEST_CASE("Django's unusable password and an inactive user never sign in, and keep their hash") {
  LatchProcess latch;
  TempDir dir;
  const json hashes = library_hashes();
  const std::string unusable_name = unique("unusable"), inactive_name = unique("inactive");
  const std::string unusable = "!AgSClLT2kUE0LKr0BOuLh7WkhUIb3d91yLnQAmC1";
  json inactive = user_line(inactive_name, hashes["django_pbkdf2_sha256"].get<std::string>());
  inactive["is_active"] = false;
  CommandResult r =
      admin(latch, {"user", "import", jsonl(dir, {user_line(unusable_name, unusable), inactive})});
  REQUIRE(r.status == 0);
  for (int api = 0; api < 5; ++api) {
    CHECK(sign_in(latch, api, unusable_name, lower(unusable_name) + "@example.com", unusable) ==
          401);
    CHECK(sign_in(latch, api, unusable_name, lower(unusable_name) + "@example.com", "") != 200);
    CHECK(sign_in(latch, api, inactive_name, lower(inactive_name) + "@example.com", kPassword) ==
          401);
  }
  CommandResult shown = admin(latch, {"user", "show", inactive_name, "--json"});
  REQUIRE(shown.status == 0);
  CHECK(json::parse(shown.output)["is_active"] == false);
  CHECK(contains(admin(latch, {"user", "show", inactive_name}).output, "cannot sign in"));
  CHECK(stored_hash(latch, unusable_name) == unusable);
  CHECK(stored_hash(latch, inactive_name) == hashes["django_pbkdf2_sha256"].get<std::string>());
}

TEST_CASE("a bad line imports nothing: exit 2 naming the line and why") {
  LatchProcess latch;
  TempDir dir;
  const std::string bcrypt = "$2b$04$9xSycSidOvm3AdlMQJxJc.XhACfI5seLjSrCpr/8.v.PyN7Dt4cq2";
  const std::string first = unique("first");
  struct Case {
    json line;
    std::string why;
  };
  const std::vector<Case> cases = {
      {user_line(unique("cost"), "$2b$31$" + bcrypt.substr(7)), "past the bound"},
      {user_line(unique("iter"), "pbkdf2_sha256$1000000000$salt$"
                                 "zU8by1nFxY4A7GS2FVOQBjyCjuVFy3dM8o2JbFNIovc="),
       "past the bound"},
      {user_line(unique("iter"), "pbkdf2:sha256:1000000000$salt$" + std::string(64, 'a')),
       "past the bound"},
      {user_line(unique("mem"), "scrypt:1073741824:8:1$salt$" + std::string(128, 'a')),
       "past the bound"},
      {user_line(unique("md5"), "md5$salt$0123456789abcdef0123456789abcdef"),
       "unknown hash format"},
      {user_line(unique("plain"), "hunter22"), "unknown hash format"},
      {{{"username", unique("mail")}, {"email", "not-an-email"}, {"password_hash", bcrypt}},
       "email"},
      {{{"username", "has space"}, {"password_hash", bcrypt}}, "username"},
      {user_line(first, bcrypt), "duplicate inside the file"},
      {{{"username", unique("x")}}, "no password_hash"},
      {{{"username", unique("x")}, {"password_hash", bcrypt}, {"pasword", "x"}}, "unknown field"},
      {{{"username", unique("x")}, {"password_hash", bcrypt}, {"created_at", "yesterday"}},
       "created_at"},
      {{{"username", unique("x")}, {"password_hash", bcrypt}, {"email_verified", "yes"}},
       "email_verified"},
  };
  const int before = user_count(latch);
  for (const auto &c : cases) {
    CAPTURE(c.line.dump());
    const std::string path =
        jsonl(dir, {user_line(first, bcrypt), user_line(unique("second"), bcrypt), c.line});
    CommandResult r = admin(latch, {"user", "import", path});
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK(contains(r.output, "line 3: "));
    CHECK(contains(r.output, c.why));
    CHECK(contains(r.output, "nothing imported"));
    CHECK(user_count(latch) == before);
  }
  // A line that is not JSON at all, after blank lines (which are skipped, but counted).
  const std::string path = dir.file("broken.jsonl");
  std::ofstream(path) << user_line(first, bcrypt).dump() << "\n\n{\"username\": \n";
  CommandResult r = admin(latch, {"user", "import", path});
  CHECK(r.status == 2);
  CHECK(contains(r.output, "line 3: not JSON"));
  CHECK(user_count(latch) == before);
  CHECK(admin(latch, {"user", "import", dir.file("missing.jsonl")}).status == 1);
}

TEST_CASE("--dry-run writes nothing; a taken identity fails the import, or is skipped with "
          "--on-conflict skip and left as it was") {
  LatchProcess latch;
  TempDir dir;
  const std::string owner = unique("owner"), owner_email = lower(owner) + "@example.com";
  REQUIRE(latch
              .post("/api/auth/signup",
                    {{"email", owner_email}, {"username", owner}, {"password", "password123"}})
              .status == 201);
  const std::string owner_hash = stored_hash(latch, owner);
  const std::string bcrypt = "$2b$04$9xSycSidOvm3AdlMQJxJc.XhACfI5seLjSrCpr/8.v.PyN7Dt4cq2";
  const std::string fresh = unique("fresh");
  json taken = {
      {"username", unique("other")}, {"email", upper(owner_email)}, {"password_hash", bcrypt}};
  const std::string path = jsonl(dir, {user_line(fresh, bcrypt), taken});
  const int before = user_count(latch);

  CommandResult dry = admin(latch, {"user", "import", path, "--dry-run", "--on-conflict", "skip"});
  INFO(dry.output);
  CHECK(dry.status == 0);
  CHECK(contains(dry.output, "would import " + fresh));
  CHECK(contains(dry.output, "bcrypt"));
  CHECK(contains(dry.output, "would skip line 2"));
  CHECK(user_count(latch) == before);
  // "-": the same lines on standard input (the database quoted: a postgres:// URI holds '&').
  const std::string piped = dir.file("piped.out");
  CHECK(std::system((std::string(LATCH_BINARY) +
                     " user import - --dry-run --on-conflict skip --db '" + latch.db_path() +
                     "' < " + path + " > " + piped + " 2>&1")
                        .c_str()) == 0);
  CHECK(contains(slurp(piped), "would import " + fresh));

  CommandResult refused = admin(latch, {"user", "import", path});
  CHECK(refused.status == 2);
  CHECK(contains(refused.output, "line 2: its email is taken"));
  CHECK(user_count(latch) == before);
  CHECK(admin(latch, {"user", "import", path, "--dry-run"}).status == 2);
  CHECK(admin(latch, {"user", "import", path, "--on-conflict", "overwrite"}).status == 2);

  CommandResult skipped = admin(latch, {"user", "import", path, "--on-conflict", "skip"});
  INFO(skipped.output);
  CHECK(skipped.status == 0);
  CHECK(contains(skipped.output, "imported 1 user, skipped 1"));
  CHECK(user_count(latch) == before + 1);
  CHECK(stored_hash(latch, owner) == owner_hash);
  CHECK(sign_in(latch, 0, owner, owner_email, "password123") == 200);
  CHECK(sign_in(latch, 0, fresh, lower(fresh) + "@example.com", "correct horse") == 200);
}

TEST_CASE("a UUID id is kept, created_at takes Unix seconds or ISO 8601, and export writes what "
          "import reads, into another server") {
  LatchProcess latch;
  TempDir dir;
  const json hashes = library_hashes();
  const std::string uuid = "3F2504E0-4F89-41D3-9A0C-0305E82C3301";
  const std::string a = unique("kept"), b = unique("iso"), c = unique("intid");
  json with_uuid = user_line(a, hashes["bcrypt_2b"].get<std::string>());
  with_uuid["id"] = uuid;
  with_uuid["created_at"] = 1600000000;
  with_uuid["display_name"] = "Ada L.";
  with_uuid["email_verified"] = true;
  json iso = user_line(b, hashes["werkzeug_scrypt"].get<std::string>());
  iso["created_at"] = "2020-09-13T14:26:40+02:00";
  json int_id = user_line(c, hashes["crypt_yescrypt"].get<std::string>());
  int_id["id"] = 42;
  int_id["created_at"] = "2020-09-13 12:26:40.5";
  REQUIRE(admin(latch, {"user", "import", jsonl(dir, {with_uuid, iso, int_id})}).status == 0);
  CHECK(sql_value(latch.db_path(), "SELECT id FROM users WHERE username = '" + a + "'") ==
        lower(uuid));
  for (const auto &name : {a, b, c})
    CHECK(sql_value(latch.db_path(), "SELECT created_at FROM users WHERE username = '" + name +
                                         "'") == "1600000000");
  const std::string c_id =
      sql_value(latch.db_path(), "SELECT id FROM users WHERE username = '" + c + "'");
  CHECK(c_id.size() == 36);
  CHECK(c_id != "42");
  // Tokens name the kept id.
  Reply token = latch.post("/auth/token", {{"username", a}, {"password", kPassword}});
  REQUIRE(token.status == 200);
  CHECK(jwt_payload(token.body["access"].get<std::string>())["user_id"] == lower(uuid));

  const std::string exported = dir.file("export.jsonl");
  CommandResult out = admin(latch, {"user", "export", exported});
  INFO(out.output);
  REQUIRE(out.status == 0);
  CHECK(contains(out.output, "exported 3 users"));
  struct stat st {};
  REQUIRE(stat(exported.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(admin(latch, {"user", "export", exported}).status == 1); // never written over
  std::map<std::string, json> by_name;
  std::istringstream lines(slurp(exported));
  for (std::string line; std::getline(lines, line);)
    by_name[json::parse(line)["username"].get<std::string>()] = json::parse(line);
  REQUIRE(by_name.size() == 3);
  CHECK(by_name[a]["id"] == lower(uuid));
  CHECK(by_name[a]["display_name"] == "Ada L.");
  CHECK(by_name[a]["email_verified"] == true);
  CHECK(by_name[a]["is_active"] == true);
  CHECK(by_name[a]["password_hash"].get<std::string>().rfind("$argon2id$", 0) == 0); // signed in
  CHECK(by_name[b]["password_hash"] == hashes["werkzeug_scrypt"]);                   // as stored
  CHECK(by_name[c]["created_at"] == 1600000000);

  // Into another server: the same users, ids and hashes, and they sign in there.
  LatchProcess other;
  CommandResult in = admin(other, {"user", "import", exported});
  INFO(in.output);
  REQUIRE(in.status == 0);
  CHECK(sql_value(other.db_path(), "SELECT id FROM users WHERE username = '" + c + "'") == c_id);
  CHECK(sign_in(other, 2, a, lower(a) + "@example.com", kPassword) == 200);
  CHECK(sign_in(other, 3, b, lower(b) + "@example.com", kPassword) == 200);
  CHECK(sign_in(other, 4, c, lower(c) + "@example.com", kPassword) == 200);
  CHECK(stored_hash(other, b).rfind("$argon2id$", 0) == 0);
}

TEST_CASE("--from-django imports a Django database's auth_user read-only, inactive users too") {
  LatchProcess latch;
  TempDir dir;
  const std::string django_db = dir.file("db.sqlite3");
  // A real Django project's database: Django's own migrations, users made by its ORM.
  python(R"(
import os, django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ")" +
         django_db + R"("}},
    USE_TZ=True)
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth.models import User
from django.contrib.auth.hashers import make_password
pw = os.environ["LATCH_TEST_PASSWORD"]
User.objects.create_user("alice", "alice@example.com", pw)
User.objects.create_user("bob", "bob@example.com", pw, is_active=False)
carol = User.objects.create_user("carol", "", pw)
carol.password = make_password(pw, hasher="argon2")
carol.save()
User.objects.create_user("dave", "dave@example.com", None)
)");
  const std::string before = slurp(django_db);
  REQUIRE_FALSE(before.empty());

  CommandResult dry = admin(latch, {"user", "import", "--from-django", django_db, "--dry-run"});
  INFO(dry.output);
  CHECK(dry.status == 0);
  CHECK(contains(dry.output, "would import alice"));
  CHECK(contains(dry.output, "django pbkdf2"));
  CHECK(contains(dry.output, "inactive"));
  const std::time_t now = std::time(nullptr);
  CommandResult r = admin(latch, {"user", "import", "--from-django", django_db});
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(contains(r.output, "imported 4 users"));
  CHECK(slurp(django_db) == before); // read-only

  // simplejwt is the API of the Django project it replaces.
  CHECK(latch.post("/auth/token", {{"username", "alice"}, {"password", kPassword}}).status == 200);
  CHECK(stored_hash(latch, "alice").rfind("$argon2id$", 0) == 0);
  CHECK(latch.post("/auth/token", {{"username", "bob"}, {"password", kPassword}}).status == 401);
  CHECK(stored_hash(latch, "bob").rfind("pbkdf2_sha256$", 0) == 0);
  CHECK(latch.post("/auth/token", {{"username", "carol"}, {"password", kPassword}}).status == 200);
  CHECK(sql_value(latch.db_path(), "SELECT email IS NULL FROM users WHERE username = 'carol'") ==
        "1");
  CHECK(stored_hash(latch, "dave").rfind("!", 0) == 0);
  CHECK(latch.post("/auth/token", {{"username", "dave"}, {"password", ""}}).status != 200);
  const std::int64_t joined = std::stoll(
      sql_value(latch.db_path(), "SELECT created_at FROM users WHERE username = 'alice'"));
  CHECK(joined <= now);
  CHECK(joined > now - 600);

  // Django allows two users one email; Latch does not: nothing imported, the row named.
  // (The Django database stays an SQLite file whatever the servers use: it is the input.)
  CHECK(sql_exec(django_db,
                 "INSERT INTO auth_user(password, is_superuser, username, first_name, last_name, "
                 "email, is_staff, is_active, date_joined) SELECT password, 0, 'erin', '', '', "
                 "'erin@example.com', 0, 1, date_joined FROM auth_user WHERE username = 'alice'; "
                 "INSERT INTO auth_user(password, is_superuser, username, first_name, last_name, "
                 "email, is_staff, is_active, date_joined) SELECT password, 0, 'frank', '', '', "
                 "'ERIN@example.com', 0, 1, date_joined FROM auth_user WHERE username = 'alice'") ==
        1);
  const std::string frank_id =
      sql_value(django_db, "SELECT id FROM auth_user WHERE username = 'frank'");
  REQUIRE_FALSE(frank_id.empty());
  LatchProcess fresh;
  CommandResult dup = admin(fresh, {"user", "import", "--from-django", django_db});
  INFO(dup.output);
  CHECK(dup.status == 2);
  CHECK(contains(dup.output, "auth_user id " + frank_id + ": duplicate inside the file"));
  CHECK(user_count(fresh) == 0);
  CHECK(admin(fresh, {"user", "import", "--from-django", dir.file("none.sqlite3")}).status == 1);
}
