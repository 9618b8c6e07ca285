#include "master/signal_table.h"

namespace tcpfork {

std::optional<SignalRow> signalRow(int signal) {
  for (const SignalRow& row : kSignalTable) {
    if (row.signal == signal) return row;
  }
  return std::nullopt;
}

int signalForAction(const std::string& name) {
  for (const SignalRow& row : kSignalTable) {
    if (row.cliName && name == row.cliName) return row.signal;
  }
  return 0;
}

std::vector<std::string> actionNames() {
  std::vector<std::string> names;
  for (const SignalRow& row : kSignalTable) {
    if (row.cliName) names.emplace_back(row.cliName);
  }
  return names;
}

}  // namespace tcpfork
