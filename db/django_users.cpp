// Reads Django's auth_user through SQLite, read-only: the Django database is never changed.
#include "db/django_users.h"

#include "db/store.h"

#include <sqlite3.h>

#include <memory>

namespace latch::db {

namespace {

std::string column_text(sqlite3_stmt *st, int i) {
  const unsigned char *text = sqlite3_column_text(st, i);
  return text ? reinterpret_cast<const char *>(text) : "";
}

} // namespace

std::vector<DjangoUser> read_django_users(const std::string &path) {
  sqlite3 *raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
  if (rc != SQLITE_OK) throw StoreError("cannot open " + path + " read-only");
  sqlite3_busy_timeout(db.get(), 5000);
  sqlite3_stmt *raw_st = nullptr;
  if (sqlite3_prepare_v2(db.get(),
                         "SELECT id, username, email, password, is_active, date_joined "
                         "FROM auth_user ORDER BY id",
                         -1, &raw_st, nullptr) != SQLITE_OK)
    throw StoreError(path + " has no readable auth_user table: " + sqlite3_errmsg(db.get()));
  std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> st(raw_st, &sqlite3_finalize);
  std::vector<DjangoUser> out;
  int step;
  while ((step = sqlite3_step(st.get())) == SQLITE_ROW) {
    DjangoUser u;
    u.id = sqlite3_column_int64(st.get(), 0);
    u.username = column_text(st.get(), 1);
    u.email = column_text(st.get(), 2);
    u.password = column_text(st.get(), 3);
    u.is_active = sqlite3_column_int64(st.get(), 4) != 0;
    u.date_joined = column_text(st.get(), 5);
    out.push_back(std::move(u));
  }
  if (step != SQLITE_DONE)
    throw StoreError("reading auth_user: " + std::string(sqlite3_errmsg(db.get())));
  return out;
}

} // namespace latch::db
