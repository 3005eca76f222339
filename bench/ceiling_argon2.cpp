// argon2id ceiling for the benchmarks: hashes per second at Latch's cost, one thread per core.
//
// The hashes go through Latch's own PasswordHasher (auth/password.cpp: libsodium, each slot
// keeping its memory), one slot per thread and nothing else around them, so the ceiling is
// exactly the hashing Latch does and a sign-in's distance from it is everything but the hash.
//
// Usage: ceiling_argon2 SECONDS [THREADS] [MEMORY_KIB] [ITERATIONS]
// Defaults: all cores, m=19456 KiB, t=2 (libsodium's argon2id always has p=1). Prints one
// JSON line: hashes, seconds, hashes_per_second, cpu_ms_per_hash, peak_rss_kib, threads.
#include "auth/password.h"

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

// Hashes until `stop`, adding one to `done` per finished hash.
void hash_until(latch::PasswordHasher &hasher, const std::atomic<bool> &stop,
                std::atomic<long> &done) {
  while (!stop.load()) {
    auto phc = hasher.hash("correct horse battery staple");
    if (!phc) {
      std::fprintf(stderr, "ceiling_argon2: hashing failed: %s\n", phc.error().detail.c_str());
      std::exit(1);
    }
    done.fetch_add(1);
  }
}

double cpu_seconds(const rusage &u) {
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s SECONDS [THREADS] [MEMORY_KIB] [ITERATIONS]\n", argv[0]);
    return 2;
  }
  const double seconds = std::atof(argv[1]);
  unsigned threads = argc > 2 ? unsigned(std::atoi(argv[2])) : std::thread::hardware_concurrency();
  if (threads == 0) threads = 1;
  latch::PasswordParams params;
  if (argc > 3) params.memory_kib = std::uint32_t(std::strtoul(argv[3], nullptr, 10));
  if (argc > 4) params.iterations = std::uint32_t(std::strtoul(argv[4], nullptr, 10));
  latch::PasswordHasher hasher(params, threads, 0);

  std::atomic<bool> stop{false};
  std::atomic<long> done{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (unsigned i = 0; i < threads; ++i)
    workers.emplace_back(hash_until, std::ref(hasher), std::cref(stop), std::ref(done));
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto &w : workers)
    w.join();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const long hashes = done.load();
  std::printf("{\"hashes\":%ld,\"seconds\":%.3f,\"hashes_per_second\":%.2f,"
              "\"cpu_ms_per_hash\":%.3f,\"peak_rss_kib\":%ld,\"threads\":%u}\n",
              hashes, elapsed, double(hashes) / elapsed,
              hashes ? 1000.0 * cpu_seconds(usage) / double(hashes) : 0.0, usage.ru_maxrss,
              threads);
  return 0;
}
