// Typed outcomes of the auth core: every failure is an Error with a stable code, never HTTP.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace latch {

enum class ErrorCode {
  // request shape
  bad_request,   // the HTTP request itself is malformed (request line, headers too large)
  missing_field, // detail: the field name
  invalid_field, // detail: the field name (wrong type, empty, bad format)
  invalid_email,
  weak_password, // shorter than the minimum, or (envelope) lacking character classes
  password_too_long,
  username_length, // outside the API's bounds
  // accounts
  user_exists,
  username_taken,
  email_taken,
  invalid_credentials,
  user_not_found, // envelope tells unknown users apart, as its document says
  wrong_password,
  email_not_verified,
  // tokens
  token_missing,
  token_malformed,
  token_bad_signature,
  token_expired,
  token_not_yet_valid,
  token_revoked,
  token_wrong_type, // detail: the type the route wanted
  // one-time tokens
  one_time_token_invalid,
  one_time_token_expired,
  // limits
  rate_limited,   // retry_after seconds
  account_locked, // retry_after seconds
  busy,           // hashing queue full: 503
  // transport (raised by the HTTP layer)
  bad_body, // malformed JSON / form, bad UTF-8, too deep
  unsupported_media_type,
  body_too_large,
  not_found,
  method_not_allowed,
  internal,
};

struct Error {
  ErrorCode code;
  std::string detail;  // a field name or short reason; never secrets or internals
  int retry_after = 0; // seconds, for rate_limited and account_locked
  int status = 0;      // bad_request: the HTTP status when not 400 (414, 431, 501, 505)
};

// A value or an Error (std::expected arrives with C++23).
template <class T> class Result {
public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T &value() { return std::get<0>(v_); }
  const T &value() const { return std::get<0>(v_); }
  T *operator->() { return &value(); }
  const T *operator->() const { return &value(); }
  T &operator*() { return value(); }
  const Error &error() const { return std::get<1>(v_); }

private:
  std::variant<T, Error> v_;
};

struct Ok {};
using Status = Result<Ok>;

} // namespace latch
