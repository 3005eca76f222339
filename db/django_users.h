// Django's auth_user table read from a Django SQLite database (latch user import --from-django).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace latch::db {

// One auth_user row, as Django stored it.
struct DjangoUser {
  std::int64_t id = 0;
  std::string username, email, password; // password: Django's encoded hash ("algorithm$...")
  bool is_active = true;
  std::string date_joined; // "2024-05-01 12:00:00.123456", UTC when USE_TZ
};

// Every row of auth_user, by id. The database is opened read-only and never changed; throws
// StoreError (db/store.h) when it cannot be read or has no auth_user table.
std::vector<DjangoUser> read_django_users(const std::string &path);

} // namespace latch::db
