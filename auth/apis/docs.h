// The five APIs as /openapi.json describes them: each route's fields and answers (its route
// points at them) and each API's wire shapes (its row points at them: auth/apis/api.h).
#pragma once

#include "auth/http/route_doc.h"

namespace latch::apis {

using http::ApiDoc;
using http::RouteDoc;

namespace picflux {
extern const ApiDoc api_doc;
extern const RouteDoc signup_doc, signin_doc, logout_doc, refresh_doc;
} // namespace picflux

namespace simplejwt {
extern const ApiDoc api_doc;
extern const RouteDoc token_doc, token_refresh_doc, token_verify_doc, register_user_doc,
    getuser_doc;
} // namespace simplejwt

namespace flask {
extern const ApiDoc api_doc;
extern const RouteDoc signup_doc, login_doc, refresh_doc, forget_password_doc, reset_password_doc,
    logout_doc;
} // namespace flask

namespace v1 {
extern const ApiDoc api_doc;
extern const RouteDoc register_user_doc, login_doc, refresh_doc, verify_doc, confirm_email_doc,
    password_reset_doc, password_reset_confirm_doc, me_doc, logout_doc;
} // namespace v1

namespace envelope {
extern const ApiDoc api_doc;
extern const RouteDoc login_doc, sign_up_doc;
} // namespace envelope

} // namespace latch::apis
