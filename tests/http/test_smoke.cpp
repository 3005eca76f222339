// The fixture itself: the binary starts on a free port and answers; the SMTP sink receives.
#include "support/latch_process.h"

#include <doctest/doctest.h>

using namespace latch::test;

TEST_CASE("the server starts on a free port and answers an unknown path with 404") {
  LatchProcess latch;
  CHECK(latch.port() > 0);
  Reply r = latch.get("/nowhere");
  CHECK(r.status == 404);
  CHECK(r.header("X-Content-Type-Options") == "nosniff");
}

TEST_CASE("mail goes to the SMTP server named by LATCH_SMTP_URL") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}}});
  std::string user = unique("smoke");
  Reply r = latch.post(
      "/api/v1/register",
      {{"email", user + "@example.com"}, {"username", user}, {"password", "password123"}});
  REQUIRE(r.status == 201);
  std::string mail = sink.wait_for_message(1);
  CHECK(mail.find("X-Rcpt-To: " + user + "@example.com") != std::string::npos);
  CHECK(!token_from_link(mail).empty());
}
