// Test fixture: a real PostgreSQL server (Debian's postgresql package) in a temporary directory.
#pragma once

#include "support/temp_dir.h"

#include <memory>
#include <string>
#include <vector>

namespace latch::test {

// initdb into a fresh temporary directory, then the postmaster on a Unix socket in that
// directory only (no TCP port, so nothing to race for), with fsync off: a throwaway cluster
// that is stopped and removed in the destructor. As root the cluster runs as `nobody`
// (initdb and postgres refuse root; nobody exists on every Debian system, so no account is
// added to the machine by a test), otherwise as the user running the test. Trust
// authentication is safe here: the socket lives in a 0700 directory only its owner (and root)
// can enter.
class PostgresServer {
public:
  // The directory holding initdb and postgres (/usr/lib/postgresql/N/bin, the newest N), or
  // "" when PostgreSQL is not installed.
  static std::string binaries();
  // The server every test of this process shares, started on first use; nullptr (and a
  // message on stderr, once) when PostgreSQL is not installed. Throws std::runtime_error when
  // it is installed but cannot start.
  static PostgresServer *shared();

  PostgresServer(); // initdb and start; throws std::runtime_error saying why not
  ~PostgresServer();
  PostgresServer(const PostgresServer &) = delete;
  PostgresServer &operator=(const PostgresServer &) = delete;

  // A libpq connection URI for the database `db` as the superuser postgres.
  std::string uri(const std::string &db = "postgres") const;
  // Creates a new empty database and returns its URI.
  std::string create_database();
  // Stops the server (fast shutdown) and starts it again on the same data and socket: what a
  // client meets when PostgreSQL goes away and comes back.
  void stop();
  void start();
  bool running() const { return pid_ > 0; }
  std::string log() const; // what the server and initdb wrote

private:
  void run_as_owner(const std::string &program, const std::vector<std::string> &args, bool wait);

  std::string bin_;
  std::unique_ptr<TempDir> dir_;
  int pid_ = -1;
  int databases_ = 0;
};

} // namespace latch::test
