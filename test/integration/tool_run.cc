#include "test/integration/tool_run.h"

#include <sys/wait.h>

namespace tcpfork::test {
namespace {

ToolRun collect(ChildProcess& process, const std::string& logPath, const std::string& jsonPath,
                std::chrono::milliseconds timeout) {
  ToolRun run;
  auto status = process.waitExit(timeout);
  run.output = readFile(logPath);
  if (!status) return run;
  run.exitCode = WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
  if (!jsonPath.empty()) run.report = nlohmann::json::parse(readFile(jsonPath), nullptr, false);
  return run;
}

}  // namespace

ToolRun runTool(const std::string& tool, const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  std::string log = tempPath(tool + ".out");
  std::vector<std::string> argv = {binary(tool)};
  argv.insert(argv.end(), args.begin(), args.end());
  ChildProcess process(argv, {}, log);
  return collect(process, log, "", timeout);
}

ToolRun runClient(const std::vector<std::string>& args, bool json) {
  std::string log = tempPath("client.out");
  std::string jsonPath = json ? tempPath("client.json") : "";
  std::vector<std::string> argv = {binary("tcpfork-client")};
  argv.insert(argv.end(), args.begin(), args.end());
  if (json) argv.insert(argv.end(), {"--json", jsonPath});
  ChildProcess process(argv, {}, log);
  return collect(process, log, jsonPath, 60s);
}

BackgroundClient::BackgroundClient(const std::vector<std::string>& args, const std::string& subcommand)
    : logPath_(tempPath(subcommand + ".out")), jsonPath_(tempPath(subcommand + ".json")) {
  std::vector<std::string> argv = {binary("tcpfork-client"), subcommand};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--json", jsonPath_});
  process_ = std::make_unique<ChildProcess>(argv, std::vector<int>{}, logPath_);
}

ToolRun BackgroundClient::finish(std::chrono::milliseconds timeout) {
  return collect(*process_, logPath_, jsonPath_, timeout);
}

}  // namespace tcpfork::test

namespace tcpfork::test {

ToolRun runCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  std::string log = tempPath(argv.at(0).substr(argv[0].rfind('/') + 1) + ".out");
  ChildProcess process(argv, {}, log);
  return collect(process, log, "", timeout);
}

}  // namespace tcpfork::test
