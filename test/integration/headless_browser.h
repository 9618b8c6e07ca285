#pragma once
// Debian's chromium, headless, driven over the DevTools protocol for browser
// tests. The protocol runs on --remote-debugging-pipe (the browser reads
// commands on its fd 3 and writes replies on fd 4, each message a JSON text
// ended by a NUL), so no port is opened and no websocket is needed.
// The browser may resolve no name and fetch nothing in the background: a
// test reaches loopback only.

#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "base/unique_fd.h"
#include "test/integration/process.h"

namespace tcpfork::test {

inline constexpr const char* kChromium = "/usr/bin/chromium";

class HeadlessBrowser {
 public:
  // Starts chromium with an empty page of `width` x `height` CSS pixels.
  // Throws std::runtime_error when it does not answer within 30 s.
  HeadlessBrowser(int width, int height);
  // Asks the browser to close (bounded), then kills it by pid.
  ~HeadlessBrowser();
  HeadlessBrowser(const HeadlessBrowser&) = delete;
  HeadlessBrowser& operator=(const HeadlessBrowser&) = delete;

  void navigate(const std::string& url);
  // The value of a JavaScript expression in the page (returned by value, so
  // it must be JSON-serialisable). Throws on an exception in the page.
  nlohmann::json evaluate(const std::string& expression);
  // The page as it looks now, as PNG, written to `path`.
  void screenshot(const std::string& path);
  pid_t pid() const { return process_->pid(); }

 private:
  // Sends a command (to the page's session when `toPage`) and waits for its
  // reply; events in between are skipped. Throws on an error reply or after
  // `timeout`.
  nlohmann::json call(const std::string& method, const nlohmann::json& params, bool toPage = true,
                      std::chrono::milliseconds timeout = 30s);

  std::string profileDir_;
  std::string logPath_;
  UniqueFd socket_;  // our end of the browser's fds 3 (commands) and 4 (replies)
  std::unique_ptr<ChildProcess> process_;
  std::string pending_;  // bytes read past the last whole message
  std::string session_;
  int nextId_ = 1;
};

// Bytes of standard base64 `text` (the protocol's encoding of binary data).
std::string decodeBase64(const std::string& text);

}  // namespace tcpfork::test
