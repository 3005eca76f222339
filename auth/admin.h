// The admin commands (latch user, sessions, backup, purge, secret, mail, doctor): one
// database, safe to run while a server serves it.
#pragma once

#include "auth/config.h"

#include <iosfwd>
#include <string>
#include <vector>

namespace latch::db {
class SqliteStore;
}

namespace latch {

// What an admin command's exit status means.
enum AdminExit : int {
  admin_ok = 0,
  admin_failed = 1,    // could not be done: database missing or unusable, name taken, ...
  admin_usage = 2,     // bad command line or input: flags, arguments, password, configuration
  admin_not_found = 3, // no user matches USER
};

// user, sessions, backup, purge, secret, mail and doctor.
bool is_admin_command(const std::string &command);

// Runs `latch ARGS...` for an admin command (args[0] is the command), reading the password
// from in for --password-stdin and LATCH_* variables through env. Returns an AdminExit.
int run_admin(const std::vector<std::string> &args, std::istream &in, std::ostream &out,
              std::ostream &err, const EnvLookup &env);
// The same with the process's stdin and environment.
int run_admin(const std::vector<std::string> &args, std::ostream &out, std::ostream &err);

// The admin part of `latch help`: every command and the exit statuses.
std::string admin_help();

// One line for each of the database file, its -wal and its -shm that other users may read or
// write (group or other mode bits), naming the file, its mode and the fix (chmod 600 FILE).
// latch serve prints them at start; latch doctor checks the same and more.
std::vector<std::string> database_permission_warnings(const std::string &db_path);

// Writes a line for each pair of look-alike usernames and each username the rule refuses, left
// from before the rule (db::SqliteStore::username_conflicts), naming latch user rename.
void report_username_conflicts(db::SqliteStore &store, std::ostream &err);

} // namespace latch
