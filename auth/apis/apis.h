// The five APIs' handlers and error renderers; the route table (http/routes.cpp) wires them.
// Handlers send errors through http::send_error (which adds Retry-After), never render_error.
#pragma once

#include "auth/http/context.h"

namespace latch::apis {

using http::Ctx;

namespace picflux {
void signup(Ctx &);
void signin(Ctx &);
void logout(Ctx &);
void refresh(Ctx &);
void render_error(Ctx &, const Error &);
} // namespace picflux

namespace simplejwt {
void token(Ctx &);
void token_refresh(Ctx &);
void token_verify(Ctx &);
void register_user(Ctx &);
void getuser(Ctx &);
void render_error(Ctx &, const Error &);
} // namespace simplejwt

namespace flask {
void signup(Ctx &);
void login(Ctx &);
void refresh(Ctx &);
void forget_password(Ctx &);
void reset_password(Ctx &);
void logout(Ctx &);
void render_error(Ctx &, const Error &);
} // namespace flask

namespace v1 {
void register_user(Ctx &);
void login(Ctx &);
void refresh(Ctx &);
void verify(Ctx &);
void confirm_email(Ctx &);
void password_reset(Ctx &);
void password_reset_confirm(Ctx &);
void me(Ctx &);
void logout(Ctx &);
void render_error(Ctx &, const Error &);
} // namespace v1

namespace envelope {
void login(Ctx &);
void sign_up(Ctx &);
void render_error(Ctx &, const Error &);
} // namespace envelope

} // namespace latch::apis
