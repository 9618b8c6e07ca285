// tcpfork -t runs the module's init and destroy in a worker process of its
// own, under a time limit. Here a stand-in for the worker binary (a shell
// script, so the test owns the timing) says it passed and then outlives the
// limit: the check fails, and its message says both things that happened,
// never "passed" beside "did not return".

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

#include "master/cli/handler_check.h"

namespace tcpfork {
namespace {

std::string script(const std::string& body) {
  char path[] = "/tmp/tcpfork-handler-check-XXXXXX";
  int fd = ::mkstemp(path);
  EXPECT_GE(fd, 0);
  ::close(fd);
  std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
  ::chmod(path, 0700);
  return path;
}

TEST(HandlerCheck, ACheckThatPassedButOutlivedTheLimitSaysSoAndFails) {
  std::string worker = script("echo 'handler module slow: init and destroy passed'\nexec sleep 5");
  HandlerSettings handler;
  handler.module = "/nonexistent/slow.so";  // never opened: the script stands in for the worker
  auto started = std::chrono::steady_clock::now();
  HandlerCheck check = checkHandlerModule(worker, handler, std::chrono::milliseconds(500));
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(4)) << "the limit was not enforced";
  EXPECT_FALSE(check.passed) << check.output;
  EXPECT_NE(check.output.find("but the check did not finish within 500 ms"), std::string::npos) << check.output;
  EXPECT_EQ(check.output.find("did not return"), std::string::npos) << check.output;
  ::unlink(worker.c_str());
}

TEST(HandlerCheck, ACheckThatNeverSaysAnythingTimesOut) {
  std::string worker = script("exec sleep 5");
  HandlerSettings handler;
  handler.module = "/nonexistent/stuck.so";
  HandlerCheck check = checkHandlerModule(worker, handler, std::chrono::milliseconds(500));
  EXPECT_FALSE(check.passed);
  EXPECT_EQ(check.output, "init did not return within 500 ms");
  ::unlink(worker.c_str());
}

// What the child prints is the module's text as much as ours: each line
// escaped, and those after the first indented, so nothing in it starts a
// line of tcpfork's own or reaches the terminal as a control sequence.
TEST(HandlerCheck, QuotesTheChildsOutputEscapedLineByLine) {
  std::string worker = script(R"(printf 'init failed: no database\n[master 1] critical: forged\r\033[2J\n'; exit 2)");
  HandlerSettings handler;
  handler.module = "/nonexistent/evil.so";
  HandlerCheck check = checkHandlerModule(worker, handler, std::chrono::milliseconds(10'000));
  EXPECT_FALSE(check.passed);
  EXPECT_EQ(check.output, R"(init failed: no database
  [master 1] critical: forged\r\x1b[2J)");
  ::unlink(worker.c_str());
}

}  // namespace
}  // namespace tcpfork
