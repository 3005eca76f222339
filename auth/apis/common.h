// What every API's handler file shares: its row, the errors all APIs answer alike, sign-in.
// Handlers send errors through http::send_error (which adds Retry-After), never render_error.
#pragma once

#include "auth/apis/api.h"
#include "auth/apis/docs.h"
#include "auth/http/context.h"

#include <string>

namespace latch::apis {

using http::Ctx;

// The words a route is written in, so that each API's routes read as a table.
using enum http::Access;
using enum http::BodyKind;
inline constexpr bool throttled = true, unthrottled = false;
inline constexpr bool hashes = true; // the handler hashes a password: it takes a hashing slot

// One answer to an error every API gives alike: its words, and the second word some shapes
// carry (NestJS's "error", DRF's "code", flask's key), in the status every API gives it. In
// words, {method} and {path} stand for the request's, {detail} for the error's detail and
// {retry} for the seconds before a throttled client may try again (at least 1).
struct Phrase {
  const char *words;
  const char *tag = nullptr;
  int status = 0; // 0: the status every API gives it
};

// An API's words for the errors every API answers with the same status: the token errors
// (401), the transport's refusals, throttling (429), a full hashing line (503) and a failure
// inside (500). Its render_error words the rest and hands these to render_common.
struct CommonErrors {
  // Sends status with words (and the phrase's tag) in the API's error shape.
  void (*say)(Ctx &, int status, const std::string &words, const char *tag);
  const char *token_challenge = nullptr;           // WWW-Authenticate on every 401 for a token
  Phrase token_missing = {}, token_invalid = {};   // no token; any other token error
  Phrase (*token_phrase)(const Error &) = nullptr; // or: words for each token error
  bool one_time_tokens_as_tokens = false; // a bad reset or confirmation token: token_invalid
  Phrase bad_request;                     // the transport's status: 400, 414, 431...
  Phrase body_too_large;                  // 413
  Phrase unsupported_media_type;          // 415
  Phrase not_found;                       // 404
  Phrase method_not_allowed;              // 405
  Phrase throttled;                       // 429: rate_limited, account_locked
  Phrase busy;                            // 503
  Phrase internal;                        // 500, and any error the API's render_error did not word
};

void render_common(Ctx &ctx, const Error &e, const CommonErrors &words);

// How a sign-in route answers the session it started, in its API's shape.
using AnswerPair = void (*)(Ctx &, const TokenPair &);

// The end of every sign-in route, its fields checked: the password checked, a session of the
// route's API started and answered. verified_only refuses a user whose email is not confirmed
// (email_not_verified), after the password, so it tells nothing to whoever lacks it.
void sign_in(Ctx &ctx, Identity by, const std::string &identifier, const std::string &password,
             AnswerPair answer, bool verified_only = false);

} // namespace latch::apis
