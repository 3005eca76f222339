// What a token signature costs: Latch's own TokenCodec (auth/tokens.cpp) signing and verifying
// with one key of each alg, on one thread, nothing around it.
//
// Verifying uses refresh tokens, which the codec never caches (a repeated access token is
// verified once and then found by its text), so each verification checks a signature.
//
// Usage: token_cost [SECONDS_PER_ALG]   (default 2). Prints one JSON line per alg: alg,
// sign_us, verify_us, token_bytes.
#include "auth/tokens.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

} // namespace

int main(int argc, char **argv) {
  const double budget = argc > 1 ? std::atof(argv[1]) : 2.0;
  const std::int64_t now = 1'800'000'000;
  for (latch::JwtAlg alg :
       {latch::JwtAlg::HS256, latch::JwtAlg::EdDSA, latch::JwtAlg::ES256, latch::JwtAlg::RS256}) {
    latch::SigningKey key;
    key.kid = "bench";
    key.alg = alg;
    key.secret =
        alg == latch::JwtAlg::HS256 ? std::string(43, 'k') : latch::generate_private_key(alg);
    latch::TokenCodec codec(std::vector<latch::SigningKey>{key});
    latch::Claims c;
    c.user_id = "0b7f8a3c-7d1e-4f2a-9c7e-1a2b3c4d5e6f";
    c.username = "annie";
    c.email = "ann@example.com";
    c.type = latch::TokenType::refresh;
    c.session_id = "s3ss10n-1d-0123456789";
    c.issued_at = now;
    c.expires_at = now + 3600;
    // Signing: half the budget.
    std::vector<std::string> tokens;
    long signed_n = 0;
    auto t = Clock::now();
    while (seconds_since(t) < budget / 2) {
      for (int i = 0; i < 64; ++i) {
        c.jti = "jti-" + std::to_string(signed_n++);
        std::string token = codec.issue(c);
        if (tokens.size() < 4096) tokens.push_back(std::move(token));
      }
    }
    const double sign_us = seconds_since(t) * 1e6 / double(signed_n);
    // Verifying: the other half, over the tokens kept.
    long verified = 0;
    t = Clock::now();
    while (seconds_since(t) < budget / 2) {
      for (int i = 0; i < 64; ++i) {
        if (!codec.decode(tokens[std::size_t(verified) % tokens.size()], now + 1)) {
          std::fprintf(stderr, "token_cost: a %s token did not verify\n", latch::jwt_alg_name(alg));
          return 1;
        }
        ++verified;
      }
    }
    const double verify_us = seconds_since(t) * 1e6 / double(verified);
    std::printf("{\"alg\": \"%s\", \"sign_us\": %.2f, \"verify_us\": %.2f, \"token_bytes\": %zu}\n",
                latch::jwt_alg_name(alg), sign_us, verify_us, tokens.front().size());
  }
  return 0;
}
