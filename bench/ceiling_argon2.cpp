// argon2id ceiling for the benchmarks: raw libsodium hashes per second at Latch's cost, one thread per core.
//
// Usage: ceiling_argon2 SECONDS [THREADS] [MEMORY_KIB] [ITERATIONS]
// Defaults: all cores, m=19456 KiB, t=2 (libsodium's argon2id always has p=1). Prints one
// JSON line: hashes, seconds, hashes_per_second, cpu_ms_per_hash, peak_rss_kib, threads.
#include <sodium.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

struct Cost {
  unsigned long long iterations;
  std::size_t memory_bytes;
};

// Hashes until `stop`, adding one to `done` per finished hash.
void hash_until(const Cost &cost, const std::atomic<bool> &stop, std::atomic<long> &done) {
  static const char password[] = "correct horse battery staple";
  char out[crypto_pwhash_STRBYTES];
  while (!stop.load()) {
    if (crypto_pwhash_str_alg(out, password, sizeof password - 1, cost.iterations,
                              cost.memory_bytes, crypto_pwhash_ALG_ARGON2ID13) != 0) {
      std::fprintf(stderr, "ceiling_argon2: crypto_pwhash_str_alg failed (out of memory?)\n");
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
  if (argc < 2 || sodium_init() < 0) {
    std::fprintf(stderr, "usage: %s SECONDS [THREADS] [MEMORY_KIB] [ITERATIONS]\n", argv[0]);
    return 2;
  }
  const double seconds = std::atof(argv[1]);
  unsigned threads = argc > 2 ? unsigned(std::atoi(argv[2])) : std::thread::hardware_concurrency();
  if (threads == 0) threads = 1;
  const Cost cost{argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 2ULL,
                  (argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 19456UL) * 1024UL};

  std::atomic<bool> stop{false};
  std::atomic<long> done{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (unsigned i = 0; i < threads; ++i)
    workers.emplace_back(hash_until, std::cref(cost), std::cref(stop), std::ref(done));
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto &w : workers) w.join();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const long hashes = done.load();
  std::printf("{\"hashes\":%ld,\"seconds\":%.3f,\"hashes_per_second\":%.2f,"
              "\"cpu_ms_per_hash\":%.3f,\"peak_rss_kib\":%ld,\"threads\":%u}\n",
              hashes, elapsed, double(hashes) / elapsed,
              hashes ? 1000.0 * cpu_seconds(usage) / double(hashes) : 0.0, usage.ru_maxrss, threads);
  return 0;
}
