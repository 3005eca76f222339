// The doctest runner shared by the unit and HTTP test binaries.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <csignal>

int main(int argc, char **argv) {
  // Tests write to connections the server has closed (that is often what they test): an
  // error to check, not a signal that ends the run.
  std::signal(SIGPIPE, SIG_IGN);
  return doctest::Context(argc, argv).run();
}
