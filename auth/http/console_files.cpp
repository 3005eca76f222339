// The console's browser side, embedded: a placeholder page until the pages are built in. The
// browser side replaces this file; it keeps console_files() (auth/http/console.h) as it is.
#include "auth/http/console.h"

namespace latch::http {

const std::map<std::string, ConsoleFile> &console_files() {
  static const std::map<std::string, ConsoleFile> files = {
      {"/_/",
       {"text/html; charset=utf-8",
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<title>Latch console</title>\n</head>\n<body>\n<h1>Latch console</h1>\n"
        "<p>The console's pages are not built into this binary; its API is at /_/api/.</p>\n"
        "</body>\n</html>\n"}},
  };
  return files;
}

} // namespace latch::http
