// The errors every API answers alike, in each API's words, and the end of every sign-in.
#include "auth/apis/common.h"

#include <algorithm>
#include <string_view>

namespace latch::apis {

namespace {

// The phrase's words with {method}, {path}, {detail} and {retry} filled in, in one pass: a
// detail that itself reads "{path}" stays as it is.
std::string fill(std::string_view words, const Ctx &ctx, const Error &e) {
  std::string out;
  for (;;) {
    const std::size_t brace = words.find('{');
    out += words.substr(0, brace);
    if (brace == std::string_view::npos) return out;
    words.remove_prefix(brace);
    const std::size_t close = words.find('}');
    const std::string_view name = words.substr(1, close == std::string_view::npos ? 0 : close - 1);
    if (name == "method")
      out += ctx.req.method;
    else if (name == "path")
      out += ctx.req.path;
    else if (name == "detail")
      out += e.detail;
    else if (name == "retry")
      out += std::to_string(std::max(1, e.retry_after));
    else { // not a placeholder: the rest as written
      out += words;
      return out;
    }
    words.remove_prefix(close + 1);
  }
}

void say(Ctx &ctx, const Error &e, const CommonErrors &w, const Phrase &p, int status) {
  w.say(ctx, p.status ? p.status : status, fill(p.words, ctx, e), p.tag);
}

} // namespace

void render_common(Ctx &ctx, const Error &e, const CommonErrors &w) {
  switch (e.code) {
  case ErrorCode::one_time_token_invalid:
  case ErrorCode::one_time_token_expired:
    if (!w.one_time_tokens_as_tokens) break;
    [[fallthrough]];
  case ErrorCode::token_missing:
  case ErrorCode::token_malformed:
  case ErrorCode::token_bad_signature:
  case ErrorCode::token_expired:
  case ErrorCode::token_not_yet_valid:
  case ErrorCode::token_revoked:
  case ErrorCode::token_wrong_type:
    if (w.token_challenge) ctx.res.set_header("WWW-Authenticate", w.token_challenge);
    return say(ctx, e, w,
               w.token_phrase                       ? w.token_phrase(e)
               : e.code == ErrorCode::token_missing ? w.token_missing
                                                    : w.token_invalid,
               401);
  case ErrorCode::bad_request: return say(ctx, e, w, w.bad_request, e.status ? e.status : 400);
  case ErrorCode::body_too_large: return say(ctx, e, w, w.body_too_large, 413);
  case ErrorCode::unsupported_media_type: return say(ctx, e, w, w.unsupported_media_type, 415);
  case ErrorCode::not_found: return say(ctx, e, w, w.not_found, 404);
  case ErrorCode::method_not_allowed: return say(ctx, e, w, w.method_not_allowed, 405);
  case ErrorCode::rate_limited:
  case ErrorCode::account_locked: return say(ctx, e, w, w.throttled, 429);
  case ErrorCode::busy: return say(ctx, e, w, w.busy, 503);
  default: break; // internal, or an error the API should have worded itself
  }
  say(ctx, e, w, w.internal, 500);
}

void sign_in(Ctx &ctx, Identity by, const std::string &identifier, const std::string &password,
             AnswerPair answer, bool verified_only) {
  auto user = ctx.service.sign_in(by, identifier, password, ctx.caller(), verified_only);
  if (!user) return http::send_error(ctx, user.error());
  auto pair = ctx.service.start_session(user.value(), ctx.api);
  if (!pair) return http::send_error(ctx, pair.error());
  answer(ctx, pair.value());
}

} // namespace latch::apis
