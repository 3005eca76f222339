// The single error path: an Error becomes the wire shape of the API that owns the route.
#include "auth/http/context.h"

#include "auth/apis/api.h"

namespace latch::http {

const char *access_name(Access a) {
  switch (a) {
  case Access::open: return "public";
  case Access::access_token: return "access";
  case Access::refresh_token: return "refresh";
  }
  return "?";
}

Caller Ctx::caller() const {
  Caller c{client_address, !hash_line_full};
  c.user_agent = req.get_header_value("User-Agent"); // the audit log truncates it
  c.request_id = res.get_header_value("X-Request-Id");
  c.api = api_name(api);
  return c;
}

void send_json(httplib::Response &res, int status, const json &body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(Ctx &ctx, const Error &error) {
  if (error.retry_after > 0)
    ctx.res.set_header("Retry-After", std::to_string(error.retry_after));
  else if (error.code == ErrorCode::busy)
    ctx.res.set_header("Retry-After", "1");
  apis::api_row(ctx.api).render_error(ctx, error);
}

Field field(const json &body, const char *name) {
  Field f;
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return f;
  if (!it->is_string()) {
    f.state = Field::wrong_type;
    return f;
  }
  f.value = it->get<std::string>();
  bool blank =
      std::all_of(f.value.begin(), f.value.end(), [](unsigned char c) { return std::isspace(c); });
  f.state = blank ? Field::blank : Field::ok;
  return f;
}

} // namespace latch::http
