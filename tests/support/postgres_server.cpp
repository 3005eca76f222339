// Test fixture: a real PostgreSQL server (Debian's postgresql package) in a temporary directory.
#include "support/postgres_server.h"

#include <libpq-fe.h>

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace latch::test {

namespace fs = std::filesystem;

namespace {

// The uid and gid the cluster runs as: nobody when root, else ourselves.
struct Owner {
  uid_t uid;
  gid_t gid;
};

Owner owner() {
  if (::geteuid() != 0) return {::geteuid(), ::getegid()};
  const passwd *pw = ::getpwnam("nobody");
  if (!pw)
    throw std::runtime_error("running as root and there is no user nobody to run "
                             "PostgreSQL as (initdb refuses root)");
  return {pw->pw_uid, pw->pw_gid};
}

int wait_exit(int pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

} // namespace

std::string PostgresServer::binaries() {
  std::error_code ec;
  std::string best;
  int best_version = 0;
  for (const auto &entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const fs::path bin = entry.path() / "bin";
    int version = 0;
    try {
      version = std::stoi(entry.path().filename().string());
    } catch (const std::exception &) {
      continue;
    }
    if (version > best_version && fs::exists(bin / "initdb") && fs::exists(bin / "postgres")) {
      best_version = version;
      best = bin.string();
    }
  }
  return best;
}

PostgresServer *PostgresServer::shared() {
  static std::unique_ptr<PostgresServer> server = [] {
    if (binaries().empty()) {
      std::cerr << "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): the "
                   "PostgreSQL cases are skipped; apt-get install postgresql runs them\n";
      return std::unique_ptr<PostgresServer>();
    }
    return std::make_unique<PostgresServer>();
  }();
  return server.get();
}

PostgresServer::PostgresServer() : bin_(binaries()), dir_(std::make_unique<TempDir>()) {
  if (bin_.empty()) throw std::runtime_error("PostgreSQL is not installed");
  const Owner o = owner();
  if (::chown(dir_->path().c_str(), o.uid, o.gid) != 0)
    throw std::runtime_error(std::string("chown of the PostgreSQL test directory: ") +
                             std::strerror(errno));
  // UTF8 with the C locale: byte order, and the same on every machine.
  run_as_owner(bin_ + "/initdb",
               {"-D", dir_->file("data"), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                "--locale=C", "--no-sync", "--no-instructions"},
               true);
  start();
}

PostgresServer::~PostgresServer() {
  try {
    stop();
  } catch (const std::exception &e) {
    std::cerr << "stopping the test PostgreSQL: " << e.what() << "\n";
  }
}

void PostgresServer::run_as_owner(const std::string &program, const std::vector<std::string> &args,
                                  bool wait) {
  const Owner o = owner();
  const std::string log_path = dir_->file("postgres.log");
  const int pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    if (::geteuid() == 0 &&
        (::setgroups(0, nullptr) != 0 || ::setgid(o.gid) != 0 || ::setuid(o.uid) != 0))
      ::_exit(126);
    // Set after the change of user (which clears it): the cluster goes when the test does.
    ::prctl(PR_SET_PDEATHSIG, SIGQUIT);
    std::vector<char *> argv{const_cast<char *>(program.c_str())};
    for (const std::string &a : args)
      argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  if (!wait) {
    pid_ = pid;
    return;
  }
  const int status = wait_exit(pid);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(program + " failed: " + log());
}

void PostgresServer::start() {
  if (pid_ > 0) return;
  run_as_owner(bin_ + "/postgres",
               {"-D", dir_->file("data"), "-k", dir_->path(), "-c", "listen_addresses=", "-c",
                "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c",
                "max_connections=200", "-c", "shared_buffers=32MB"},
               false);
  const std::string conninfo = uri();
  for (int i = 0; i < 600; ++i) {
    if (PQping(conninfo.c_str()) == PQPING_OK) return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("postgres exited at start: " + log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  throw std::runtime_error("postgres did not accept connections within 30 s: " + log());
}

void PostgresServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGINT); // fast shutdown: clients are disconnected, the data is kept
  int status = 0;
  for (int i = 0; i < 600; ++i) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid_, SIGKILL);
  wait_exit(pid_);
  pid_ = -1;
}

std::string PostgresServer::uri(const std::string &db) const {
  return "postgresql:///" + db + "?host=" + dir_->path() + "&user=postgres";
}

std::string PostgresServer::create_database() {
  const std::string name = "latch_test_" + std::to_string(++databases_);
  PGconn *conn = PQconnectdb(uri().c_str());
  std::string error;
  if (PQstatus(conn) != CONNECTION_OK) {
    error = PQerrorMessage(conn);
  } else {
    PGresult *r = PQexec(conn, ("CREATE DATABASE " + name).c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK) error = PQresultErrorMessage(r);
    PQclear(r);
  }
  PQfinish(conn);
  if (!error.empty()) throw std::runtime_error("CREATE DATABASE " + name + ": " + error);
  return uri(name);
}

std::string PostgresServer::log() const {
  std::ifstream in(dir_->file("postgres.log"));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

} // namespace latch::test
