#pragma once
// What a test needs of the machine (root, a Debian package's tool), said
// once at the top of the test.
// A requirement not met skips the test with the reason; under
// TCPFORK_REQUIRE_ALL_TESTS=1 (CI, which runs as root with the Debian
// packages `make deps` installs) it fails the test instead, so that a test
// CI should have run cannot pass there by skipping.
//
// Skips CI expects or cannot rule out (a figure AddressSanitizer's allocator
// swamps, a machine out of local ports, a checkout the workers' user cannot
// reach) stay plain GTEST_SKIP(), each with a comment saying why.

#include <gtest/gtest.h>

#include "test/integration/process.h"

namespace tcpfork::test {

// True when the environment holds TCPFORK_REQUIRE_ALL_TESTS=1.
bool everyTestMustRun();

}  // namespace tcpfork::test

// Skips (or, under TCPFORK_REQUIRE_ALL_TESTS=1, fails) the current test
// unless `condition` holds. `reason` says what the test needs and why; it is
// streamed into the message as after GTEST_SKIP() (parts may be joined with
// <<) and evaluated only when the condition fails. Like GTEST_SKIP() and
// FAIL() it returns from the enclosing function, so it belongs in a TEST body
// or a fixture's SetUp(), functions returning void; a derived fixture whose
// SetUp() calls its base's returns too when IsSkipped() or HasFatalFailure().
#define TCPFORK_REQUIRE(condition, reason)                                                 \
  do {                                                                                     \
    if (!(condition)) {                                                                    \
      if (::tcpfork::test::everyTestMustRun()) {                                           \
        FAIL() << reason << " (TCPFORK_REQUIRE_ALL_TESTS=1: this run requires every test to run)"; \
      } else {                                                                             \
        GTEST_SKIP() << reason;                                                            \
      }                                                                                    \
    }                                                                                      \
  } while (false)

// Skips the current test, plainly (CI may clone anywhere), unless the
// workers' user `nobody` can reach the built binaries: every directory above
// them needs o+x. Where a checkout lies (under a 0700 home, say) is not the
// test's to choose. Returns from the enclosing function, as GTEST_SKIP().
#define TCPFORK_SKIP_UNLESS_NOBODY_REACHES_THE_BUILD()                                         \
  do {                                                                                       \
    if (!::tcpfork::test::reachableByOthers(::tcpfork::test::binary("tcpfork-worker"))) {    \
      GTEST_SKIP() << "build directory not reachable by nobody (every directory above it needs o+x)"; \
    }                                                                                        \
  } while (false)
