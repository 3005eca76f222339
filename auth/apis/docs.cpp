// The five APIs as /openapi.json describes them: each route's fields and answers, read from
// its handler and the API's error renderer (auth/apis/*.cpp), and each API's wire shapes.
// Keep them equal: tests/openapi checks every answer of the real server against them.
#include "auth/apis/docs.h"

namespace latch::apis {

namespace {

bool reset_token_answered(const Config &c) {
  return c.reset_token_in_response;
}
bool reset_token_mailed(const Config &c) {
  return !c.reset_token_in_response;
}
bool verify_token_answered(const Config &c) {
  return c.verify_token_in_response;
}
bool verify_token_not_answered(const Config &c) {
  return !c.verify_token_in_response;
}

// An empty JSON object, `{}`.
constexpr const char *kEmptyObject =
    R"({"type":"object","additionalProperties":false,"maxProperties":0})";

} // namespace

// ---- picflux (NestJS): /api/auth -------------------------------------------------------------

namespace picflux {

namespace {

constexpr const char *kComponents = R"json({
  "PicfluxTokenPair": {
    "type": "object", "required": ["access_token", "refresh_token"], "additionalProperties": false,
    "properties": {
      "access_token": {"type": "string", "description": "access JWT (15 minutes by default)"},
      "refresh_token": {"type": "string", "description": "refresh JWT, single use: /api/auth/refresh rotates it (14 days by default)"}
    }
  },
  "PicfluxError": {
    "type": "object", "description": "NestJS's error body", "required": ["statusCode", "message"],
    "additionalProperties": false,
    "properties": {
      "statusCode": {"type": "integer", "description": "the HTTP status"},
      "message": {
        "description": "what went wrong; a list of class-validator's messages when fields are invalid",
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]
      },
      "error": {"type": "string", "description": "the status's reason phrase (absent on a token's 401, on 429 and on 500)"}
    }
  }
})json";

constexpr const char *kInvalid =
    "invalid fields: class-validator's messages, one per rule broken (\"email must be an "
    "email\", \"username must be longer than or equal to 4 characters\", ...)";

} // namespace

const RouteDoc signup_doc = {
    .fields = {{"email", true, "a valid email address (the WHATWG rule); unique"},
               {"username", true, "4 to 30 characters; unique",
                R"({"type":"string","minLength":4,"maxLength":30})"},
               {"password", true, "at least --password-min-length (8) and at most 30 characters",
                R"({"type":"string","maxLength":30})"}},
    .answers = {{201, "PicfluxTokenPair", "the user is created and signed in"},
                {400, "PicfluxError", kInvalid},
                {409, "PicfluxError", "\"Username or email is already in use\""}},
};

const RouteDoc signin_doc = {
    .fields = {{"email", true, "the user's email address"}, {"password", true, "the password"}},
    .answers = {{200, "PicfluxTokenPair", "signed in"},
                {400, "PicfluxError", kInvalid},
                {401, "PicfluxError",
                 "\"Invalid credentials\": no such email, or a wrong password"}},
};

const RouteDoc logout_doc = {
    .answers = {{200, nullptr, "the session is over; the body is empty"}},
};

const RouteDoc refresh_doc = {
    .answers = {{200, "PicfluxTokenPair",
                 "a new pair; the refresh token presented is spent (presented again within "
                 "--refresh-reuse-interval, it gets the same new refresh token)"}},
};

const ApiDoc api_doc = {"NestJS", kComponents, "PicfluxError", "PicfluxError", nullptr, 404};

} // namespace picflux

// ---- simplejwt (Django REST framework + SimpleJWT): /auth ----------------------------------

namespace simplejwt {

namespace {

constexpr const char *kComponents = R"json({
  "SimplejwtTokenPair": {
    "type": "object", "required": ["refresh", "access"], "additionalProperties": false,
    "properties": {
      "refresh": {"type": "string", "description": "refresh JWT, single use (1 day by default)"},
      "access": {"type": "string", "description": "access JWT (5 minutes by default)"}
    }
  },
  "SimplejwtUser": {
    "type": "object", "required": ["username"], "additionalProperties": false,
    "properties": {"username": {"type": "string"}}
  },
  "SimplejwtFieldErrors": {
    "type": "object", "minProperties": 1,
    "description": "Django REST framework's validation errors: each invalid field with its messages",
    "additionalProperties": {"type": "array", "items": {"type": "string"}, "minItems": 1}
  },
  "SimplejwtDetail": {
    "type": "object", "required": ["detail"], "additionalProperties": false,
    "description": "Django REST framework's error body",
    "properties": {
      "detail": {"type": "string"},
      "code": {"type": "string", "description": "a stable code (token_not_valid, throttled, parse_error, ...), where DRF gives one"}
    }
  }
})json";

constexpr const char *kTokenNotValid =
    "\"Token is invalid or expired\" (code token_not_valid): malformed, expired, revoked or of "
    "the wrong type";
constexpr const char *kWwwAuthenticate = R"({"WWW-Authenticate": {
  "description": "Bearer realm=\"api\", on token errors", "schema": {"type": "string"}}})";

} // namespace

const RouteDoc token_doc = {
    .fields = {{"username", true, "the username"}, {"password", true, "the password"}},
    .answers = {{200, "SimplejwtTokenPair", "signed in"},
                {400, "SimplejwtFieldErrors",
                 "a missing, blank or non-string field: \"This field is required.\", \"This "
                 "field may not be blank.\", \"Not a valid string.\""},
                {401, "SimplejwtDetail", "\"No active account found with the given credentials\""}},
};

const RouteDoc token_refresh_doc = {
    .fields = {{"refresh", true,
                "a refresh token; spent by this call (presented again within "
                "--refresh-reuse-interval, it gets the same new refresh token)"}},
    .answers = {{200, "SimplejwtTokenPair", "a new pair"},
                {400, "SimplejwtFieldErrors", "refresh missing, blank or not a string"},
                {401, "SimplejwtDetail", kTokenNotValid, "application/json", kWwwAuthenticate}},
};

const RouteDoc token_verify_doc = {
    .fields = {{"token", true, "an access or a refresh token"}},
    .answers = {{200, kEmptyObject, "the token is valid: `{}`"},
                {400, "SimplejwtFieldErrors", "token missing, blank or not a string"},
                {401, "SimplejwtDetail", kTokenNotValid, "application/json", kWwwAuthenticate}},
};

const RouteDoc register_user_doc = {
    .fields = {{"username", true, "1 to 150 characters; unique"},
               {"password", true, "at least --password-min-length (8) characters"},
               {"email", false, "a valid email address (the WHATWG rule); unique"}},
    .answers = {{201, "SimplejwtTokenPair", "the user is created and signed in"},
                {400, "SimplejwtFieldErrors",
                 "invalid fields (username, password, email): \"This field is required.\", "
                 "\"This password is too short. It must contain at least 8 characters.\", "
                 "\"Enter a valid email address.\", ..."},
                {409, "SimplejwtDetail", "\"User already exists\""}},
};

const RouteDoc getuser_doc = {
    .answers = {{200, "SimplejwtUser", "the username of the access token's user"}},
};

const ApiDoc api_doc = {"Django REST framework + SimpleJWT", kComponents, "SimplejwtDetail",
                        "SimplejwtDetail", kWwwAuthenticate};

} // namespace simplejwt

// ---- flask (Flask + flask-jwt-extended): /auth ---------------------------------------------

namespace flask {

namespace {

constexpr const char *kComponents = R"json({
  "FlaskMessage": {
    "type": "object", "required": ["message"], "additionalProperties": false,
    "properties": {"message": {"type": "string"}}
  },
  "FlaskMsg": {
    "type": "object", "required": ["msg"], "additionalProperties": false,
    "description": "flask-jwt-extended's token error",
    "properties": {"msg": {"type": "string"}}
  },
  "FlaskTokenPair": {
    "type": "object", "required": ["access_token", "refresh_token"], "additionalProperties": false,
    "properties": {
      "access_token": {"type": "string", "description": "access JWT (1 hour by default)"},
      "refresh_token": {"type": "string", "description": "refresh JWT (30 days by default)"}
    }
  },
  "FlaskAccessToken": {
    "type": "object", "required": ["access_token"], "additionalProperties": false,
    "properties": {"access_token": {"type": "string"}}
  },
  "FlaskResetToken": {
    "type": "object", "required": ["reset_token"], "additionalProperties": false,
    "properties": {"reset_token": {"type": "string", "description": "for /auth/reset-password (15 minutes by default)"}}
  }
})json";

} // namespace

const RouteDoc signup_doc = {
    .fields = {{"username", true, "1 to 150 characters; unique"},
               {"email", true, "a valid email address (the WHATWG rule); unique"},
               {"password", true, "at least --password-min-length (8) characters"}},
    .answers = {{201, "FlaskMessage", "\"User created.\""},
                {400, "FlaskMessage",
                 "\"Missing required fields.\", \"Invalid email address.\", \"Password must be "
                 "at least 8 characters.\", ..."},
                {409, "FlaskMessage", "\"User already exists.\""}},
};

const RouteDoc login_doc = {
    .fields = {{"username", true, "the username"}, {"password", true, "the password"}},
    .answers = {{200, "FlaskTokenPair", "signed in"},
                {400, "FlaskMessage", "\"Missing credentials.\""},
                {401, "FlaskMessage", "\"Invalid credentials.\""}},
};

const RouteDoc refresh_doc = {
    .answers = {{200, "FlaskAccessToken",
                 "a new access token; the refresh token stays valid until it expires"}},
};

const RouteDoc forget_password_doc = {
    .fields = {{"email", true, "the user's email address"}},
    .answers = {{200, "FlaskMessage", "\"Password reset link sent.\": the token goes by mail",
                 "application/json", nullptr, reset_token_mailed},
                {200, "FlaskResetToken", "the reset token itself (--reset-token-in-response)",
                 "application/json", nullptr, reset_token_answered},
                {400, "FlaskMessage", "\"Email required.\""},
                {404, "FlaskMessage", "\"No user with that email.\""}},
};

const RouteDoc reset_password_doc = {
    .fields = {{"reset_token", true, "the token from /auth/forget-password"},
               {"new_password", true, "at least --password-min-length (8) characters"}},
    .answers = {{200, "FlaskMessage", "\"Password reset successful.\": every session is over"},
                {400, "FlaskMessage",
                 "\"Token and new password required.\", \"Password must be at least 8 "
                 "characters.\", ..."},
                {401, "FlaskMessage", "\"Invalid reset token.\" or \"Reset token expired.\""}},
};

const RouteDoc logout_doc = {
    .answers = {{200, "FlaskMessage", "\"Logged out successfully.\""}},
};

const ApiDoc api_doc = {"Flask + flask-jwt-extended", kComponents, "FlaskMessage", "FlaskMsg"};

} // namespace flask

// ---- v1 (Go + Gin): /api/v1 -------------------------------------------------------------

namespace v1 {

namespace {

constexpr const char *kComponents = R"json({
  "V1Error": {
    "type": "object", "required": ["error"], "additionalProperties": false,
    "properties": {"error": {"type": "string"}}
  },
  "V1Message": {
    "type": "object", "required": ["message"], "additionalProperties": false,
    "properties": {"message": {"type": "string"}}
  },
  "V1Registered": {
    "type": "object", "required": ["message", "verifyToken"], "additionalProperties": false,
    "properties": {
      "message": {"type": "string"},
      "verifyToken": {"type": "string", "description": "confirms the address at GET /api/v1/verify?token= (1 day by default)"}
    }
  },
  "V1LoginTokens": {
    "type": "object", "additionalProperties": false,
    "required": ["access_token", "expires_in", "refresh_expires_in", "refresh_token"],
    "properties": {
      "access_token": {"type": "string"},
      "expires_in": {"type": "integer", "description": "the access token's lifetime in seconds (3600 by default)"},
      "refresh_expires_in": {"type": "integer", "description": "the refresh token's lifetime in seconds (259200 by default)"},
      "refresh_token": {"type": "string"}
    }
  },
  "V1AccessToken": {
    "type": "object", "required": ["access_token", "expires_in"], "additionalProperties": false,
    "properties": {
      "access_token": {"type": "string"},
      "expires_in": {"type": "integer", "description": "its lifetime in seconds"}
    }
  },
  "V1Claims": {
    "type": "object", "description": "the token's claims, as signed (so open to claims this list does not name)",
    "required": ["sub", "token_type", "jti", "sid", "iat", "exp"],
    "additionalProperties": true,
    "properties": {
      "sub": {"type": "string", "description": "the user id"},
      "uid": {"type": "string", "description": "the user id"},
      "user_id": {"type": "string", "description": "the user id"},
      "email": {"type": "string"},
      "username": {"type": "string"},
      "token_type": {"type": "string", "enum": ["access", "refresh"]},
      "jti": {"type": "string"},
      "sid": {"type": "string", "description": "the session"},
      "iat": {"type": "integer"},
      "exp": {"type": "integer"}
    }
  },
  "V1VerifiedToken": {
    "type": "object", "required": ["token"], "additionalProperties": false,
    "properties": {"token": {"$ref": "#/components/schemas/V1Claims"}}
  },
  "V1Me": {
    "type": "object", "required": ["claims"], "additionalProperties": false,
    "properties": {"claims": {"$ref": "#/components/schemas/V1Claims"}}
  }
})json";

constexpr const char *kHtml = R"({"type":"string"})";

} // namespace

const RouteDoc register_user_doc = {
    .fields =
        {{"email", true, "a valid email address (the WHATWG rule); unique"},
         {"username", true, "1 to 150 characters; unique"},
         {"password", true, "at least --password-min-length (8) characters"},
         {"sendEmail", false,
          "as the query parameter, which wins: true, false, 1 or 0 (any case), or a boolean",
          R"({"type":["boolean","string"],"pattern":"^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|[01]|)$","default":true})"}},
    .query = {{"sendEmail", false,
               "mail a link to confirm the address (GET /api/v1/verify?token=); true unless "
               "false or 0",
               R"({"type":"boolean","default":true})"}},
    .answers = {{201, "V1Message", "\"registered\"", "application/json", nullptr,
                 verify_token_not_answered},
                {201, "V1Registered",
                 "\"registered\" and the address-confirmation token (--verify-token-in-response)",
                 "application/json", nullptr, verify_token_answered},
                {400, "V1Error",
                 "\"email, username and password are required\", \"sendEmail must be true or "
                 "false\", \"invalid email\", \"password must be at least 8 characters\", ..."},
                {409, "V1Error", "\"user already exists\""}},
};

const RouteDoc login_doc = {
    .fields = {{"email", true, "the user's email address"}, {"password", true, "the password"}},
    .answers = {{200, "V1LoginTokens", "signed in"},
                {400, "V1Error", "\"email and password are required\""},
                {401, "V1Error",
                 "\"invalid credentials\", or \"email not verified\" (--require-verified-email)"}},
};

const RouteDoc refresh_doc = {
    .fields = {{"refresh_token", true, "a refresh token; it stays valid"}},
    .answers = {{200, "V1AccessToken", "a new access token"},
                {400, "V1Error", "\"refresh_token is required\""},
                {401, "V1Error", "\"invalid token\""}},
};

const RouteDoc verify_doc = {
    .fields = {{"token", true, "an access or a refresh token"}},
    .answers = {{200, "V1VerifiedToken", "the token is valid: its claims"},
                {400, "V1Error", "\"token is required\""},
                {401, "V1Error", "\"invalid token\""}},
};

const RouteDoc confirm_email_doc = {
    .query = {{"token", true, "the token of the mailed confirmation link"}},
    .answers = {{200, "V1Message", "\"email verified\""},
                {200, kHtml, "to a browser (Accept: text/html): a page saying so", "text/html"},
                {400, "V1Error", "\"token not provided\" or \"invalid or expired token\""},
                {400, kHtml, "to a browser (Accept: text/html): a page saying so", "text/html"}},
};

const RouteDoc password_reset_doc = {
    .fields = {{"email", true, "the user's email address"},
               {"username", true, "the user's username"}},
    .answers = {{200, "V1Message",
                 "\"if the account exists, a reset link has been sent\", whether or not email "
                 "and username name a user"},
                {400, "V1Error", "\"email and username are required\""}},
};

const RouteDoc password_reset_confirm_doc = {
    .fields = {{"token", false, "the reset token, when not given as ?token="},
               {"new_password", true, "at least --password-min-length (8) characters"},
               {"new_password_confirm", true, "the same again"}},
    .query = {{"token", false, "the reset token of the mailed link"}},
    .answers = {{200, kEmptyObject, "the password is set and every session is over: `{}`"},
                {400, "V1Error",
                 "\"token not provided\", \"new_password and new_password_confirm are "
                 "required\", \"password not confirm\", \"invalid or expired token\", "
                 "\"password must be at least 8 characters\", ..."}},
};

const RouteDoc me_doc = {
    .answers = {{200, "V1Me", "the access token's claims"}},
};

const RouteDoc logout_doc = {
    .answers = {{200, "V1Message", "\"logout successful\""}},
};

const ApiDoc api_doc = {"Go + Gin", kComponents, "V1Error", "V1Error"};

} // namespace v1

// ---- envelope (Express): /api/v1/auth ------------------------------------------------------

namespace envelope {

namespace {

constexpr const char *kComponents = R"json({
  "EnvelopeError": {
    "type": "object", "description": "every answer is an envelope; an error's data is empty",
    "required": ["code", "requestTime", "message", "apiVersion", "data"],
    "additionalProperties": false,
    "properties": {
      "code": {"type": "integer", "description": "the HTTP status"},
      "requestTime": {"type": "string", "format": "date-time", "description": "ISO 8601 UTC with milliseconds"},
      "message": {"type": "string"},
      "apiVersion": {"type": "string", "description": "--api-version (v0.0.1 by default)"},
      "data": {"type": "array", "maxItems": 0}
    }
  },
  "EnvelopeToken": {
    "type": "object", "required": ["code", "requestTime", "message", "apiVersion", "data"],
    "additionalProperties": false,
    "properties": {
      "code": {"type": "integer", "const": 200},
      "requestTime": {"type": "string", "format": "date-time"},
      "message": {"type": "string", "const": "Success"},
      "apiVersion": {"type": "string"},
      "data": {
        "type": "array", "minItems": 1, "maxItems": 1, "description": "the access token (1 hour by default; there is no refresh token)",
        "items": {"type": "string"}
      }
    }
  },
  "EnvelopeUser": {
    "type": "object", "required": ["uuid", "display_name", "username", "email", "profile_picture"],
    "additionalProperties": false,
    "properties": {
      "uuid": {"type": "string", "format": "uuid"},
      "display_name": {"type": "string"},
      "username": {"type": "string"},
      "email": {"type": "string"},
      "profile_picture": {"type": "string"}
    }
  },
  "EnvelopeSignedUp": {
    "type": "object", "required": ["code", "requestTime", "message", "apiVersion", "data"],
    "additionalProperties": false,
    "properties": {
      "code": {"type": "integer", "const": 200},
      "requestTime": {"type": "string", "format": "date-time"},
      "message": {"type": "string", "const": "Success"},
      "apiVersion": {"type": "string"},
      "data": {
        "type": "array", "minItems": 1, "maxItems": 1, "description": "the new user",
        "items": {"$ref": "#/components/schemas/EnvelopeUser"}
      }
    }
  }
})json";

} // namespace

const RouteDoc login_doc = {
    .fields = {{"identity", true, "the user's email address or username"},
               {"password", true, "the password"}},
    .answers = {{200, "EnvelopeToken", "signed in: data is [access token]"},
                {400, "EnvelopeError", "\"Identity and password are required\""},
                {401, "EnvelopeError", "\"Invalid password\""},
                {404, "EnvelopeError", "\"User not found\""}},
};

const RouteDoc sign_up_doc = {
    .fields = {{"username", true, "1 to 150 characters; unique"},
               {"email", true, "a valid email address (the WHATWG rule); unique"},
               {"password", true,
                "at least 8 characters with a lower-case and an upper-case letter, a digit and "
                "one of !@#$%^&*"},
               {"display_name", true, "the name shown"},
               {"phone_number", false, "kept with the user"},
               {"profile_picture", false, "a picture's URL"}},
    .answers = {{200, "EnvelopeSignedUp", "the user is created: data is [user]"},
                {400, "EnvelopeError",
                 "\"User is empty\", \"<field> is required\", \"<field> is not valid\", \"Email "
                 "is not valid\", \"Password is not valid\""},
                {409, "EnvelopeError", "\"User already exists\""}},
};

const ApiDoc api_doc = {"Express", kComponents, "EnvelopeError", "EnvelopeError"};

} // namespace envelope

} // namespace latch::apis
