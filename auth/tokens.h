// JWT issue and verification, HS256 only: the algorithm is pinned, never read from the token.
#pragma once

#include "auth/result.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace latch {

enum class TokenType { access, refresh };
const char *token_type_name(TokenType t);

struct Claims {
  std::string user_id; // sub, uid and user_id
  std::optional<std::string> email;
  std::string username;
  TokenType type = TokenType::access;
  std::string jti;
  std::string session_id; // sid
  std::int64_t issued_at = 0;  // iat
  std::int64_t expires_at = 0; // exp
  nlohmann::json raw;          // the payload as signed, for the APIs that echo claims
};

class TokenCodec {
public:
  static constexpr std::size_t kMaxTokenLength = 8192;
  static constexpr std::int64_t kClockLeeway = 30; // seconds of skew tolerated for iat/nbf

  explicit TokenCodec(std::string secret);

  // Signs the claims (raw is ignored) and returns the compact JWT.
  std::string issue(const Claims &claims) const;

  // Verifies structure, header (alg must be HS256), signature and times; does not check
  // the token type or revocation, which the service does.
  Result<Claims> decode(std::string_view token, std::int64_t now) const;

private:
  std::string secret_;
  std::string encoded_header_;
};

} // namespace latch
