#include "test/integration/headless_browser.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace tcpfork::test {

namespace {

// A copy of `fd` at 100 or above, so that placing the browser's ends at 3
// and 4 cannot clobber one of them.
UniqueFd highCopy(int fd) {
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 100);
  if (copy < 0) throw std::runtime_error(std::string("fcntl(F_DUPFD): ") + std::strerror(errno));
  return UniqueFd(copy);
}

// A socket pair rather than pipes: a write to a browser that has died then
// fails with EPIPE (MSG_NOSIGNAL) instead of killing the test with SIGPIPE.
std::array<UniqueFd, 2> highSocketPair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    throw std::runtime_error(std::string("socketpair(): ") + std::strerror(errno));
  }
  UniqueFd ours(fds[0]), theirs(fds[1]);
  return {highCopy(ours.get()), highCopy(theirs.get())};
}

// Tail of the browser's log, for errors.
std::string logTail(const std::string& path) {
  std::string log = readFile(path);
  return log.size() > 2000 ? log.substr(log.size() - 2000) : log;
}

}  // namespace

HeadlessBrowser::HeadlessBrowser(int width, int height)
    : profileDir_(tempPath("chromium-profile")), logPath_(tempPath("chromium.log")) {
  std::filesystem::create_directories(profileDir_);
  auto [ours, theirs] = highSocketPair();
  // bash puts the browser's end at both 3 and 4 and closes the original
  // (dash cannot redirect a descriptor named by a variable).
  std::vector<std::string> argv = {
      "/bin/bash", "-c", R"(s=$1; shift; exec "$@" 3<&$s 4>&$s {s}<&-)", "bash", std::to_string(theirs.get()), kChromium,
      "--headless", "--remote-debugging-pipe", "--user-data-dir=" + profileDir_,
      // A container has no user namespaces for the sandbox, and root may not use it.
      "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
      "--window-size=" + std::to_string(width) + "," + std::to_string(height), "--hide-scrollbars",
      // Nothing beyond loopback: no name resolves but localhost, and none of
      // the browser's own background traffic starts.
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
      "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--disable-breakpad",
      "--no-pings", "--no-first-run", "--no-default-browser-check", "--metrics-recording-only",
      "--disable-features=Translate,OptimizationHints,MediaRouter,InterestFeedContentSuggestions", "about:blank"};
  process_ = std::make_unique<ChildProcess>(argv, std::vector<int>{theirs.get()}, logPath_);
  socket_ = std::move(ours);
  // Our copy of the browser's end closed, a dead browser reads as EOF.
  theirs.reset();

  nlohmann::json target = call("Target.createTarget", {{"url", "about:blank"}}, false);
  nlohmann::json attached =
      call("Target.attachToTarget", {{"targetId", target.at("targetId")}, {"flatten", true}}, false);
  session_ = attached.at("sessionId").get<std::string>();
  call("Emulation.setDeviceMetricsOverride",
       {{"width", width}, {"height", height}, {"deviceScaleFactor", 1}, {"mobile", false}});
}

HeadlessBrowser::~HeadlessBrowser() {
  try {
    call("Browser.close", nlohmann::json::object(), false, 5s);
  } catch (const std::exception&) {
    // Killed below.
  }
  process_->waitExit(10s);
  process_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(profileDir_, ignored);
}

void HeadlessBrowser::navigate(const std::string& url) {
  nlohmann::json reply = call("Page.navigate", {{"url", url}});
  if (reply.contains("errorText")) {
    throw std::runtime_error("navigate(" + url + "): " + reply["errorText"].get<std::string>());
  }
}

nlohmann::json HeadlessBrowser::evaluate(const std::string& expression) {
  nlohmann::json reply = call("Runtime.evaluate", {{"expression", expression}, {"returnByValue", true}});
  if (reply.contains("exceptionDetails")) {
    throw std::runtime_error("evaluate: " + reply["exceptionDetails"].dump());
  }
  return reply.at("result").value("value", nlohmann::json());
}

void HeadlessBrowser::screenshot(const std::string& path) {
  nlohmann::json reply = call("Page.captureScreenshot", {{"format", "png"}});
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << decodeBase64(reply.at("data").get<std::string>());
  if (!out.flush()) throw std::runtime_error("screenshot: cannot write " + path);
}

nlohmann::json HeadlessBrowser::call(const std::string& method, const nlohmann::json& params, bool toPage,
                                     std::chrono::milliseconds timeout) {
  int id = nextId_++;
  nlohmann::json message = {{"id", id}, {"method", method}, {"params", params}};
  if (toPage) message["sessionId"] = session_;
  std::string bytes = message.dump();
  bytes.push_back('\0');
  for (size_t sent = 0; sent < bytes.size();) {
    ssize_t n = ::send(socket_.get(), bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(method + ": write: " + std::strerror(errno) + "; browser log:\n" + logTail(logPath_));
    sent += size_t(n);
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    for (size_t end; (end = pending_.find('\0')) != std::string::npos;) {
      nlohmann::json reply = nlohmann::json::parse(pending_.substr(0, end));
      pending_.erase(0, end + 1);
      if (reply.value("id", 0) != id) continue;  // an event, or a reply nobody waits for
      if (reply.contains("error")) throw std::runtime_error(method + ": " + reply["error"].dump());
      return reply.value("result", nlohmann::json::object());
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      throw std::runtime_error(method + ": no reply within " + std::to_string(timeout.count()) + " ms; browser log:\n" +
                               logTail(logPath_));
    }
    pollfd p{socket_.get(), POLLIN, 0};
    if (::poll(&p, 1, int(left.count())) <= 0) continue;
    char buffer[65536];
    ssize_t n = ::recv(socket_.get(), buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(method + ": the browser closed its pipe; its log:\n" + logTail(logPath_));
    pending_.append(buffer, size_t(n));
  }
}

std::string decodeBase64(const std::string& text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 4 * 3);
  uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    if (c == '=') break;
    int v = value(c);
    if (v < 0) throw std::runtime_error("base64: unexpected character");
    bits = (bits << 6) | uint32_t(v);
    if (++count == 4) {
      out.push_back(char(bits >> 16));
      out.push_back(char(bits >> 8));
      out.push_back(char(bits));
      bits = 0;
      count = 0;
    }
  }
  if (count == 3) {
    out.push_back(char(bits >> 10));
    out.push_back(char(bits >> 2));
  } else if (count == 2) {
    out.push_back(char(bits >> 4));
  }
  return out;
}

}  // namespace tcpfork::test
