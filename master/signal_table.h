#pragma once
// The master's signals, once: which signal means what, and which of them
// `tcpfork -s NAME` sends. The master's loop registers an event for each row
// and dispatches on the action; the CLI takes its -s names from here, so the
// two cannot disagree.

#include <signal.h>

#include <optional>
#include <span>
#include <string>
#include <vector>

namespace tcpfork {

enum class MasterAction {
  kReap,          // CHLD
  kReload,        // HUP
  kFastStop,      // TERM, INT
  kGracefulStop,  // QUIT
  kReopenLogs,    // USR1
  kScaleUp,       // TTIN
  kScaleDown,     // TTOU
  kProfile,       // TRAP: forwarded to the workers
  kHeapProfile,   // URG: forwarded to the workers (rarely sent by the kernel: only to a socket's F_SETOWN owner)
  kUpgrade,       // USR2: binary upgrade
};

struct SignalRow {
  int signal;
  MasterAction action;
  const char* cliName;  // the `-s` name, or nullptr when -s does not send it
};

inline constexpr SignalRow kSignalTable[] = {
    {SIGCHLD, MasterAction::kReap, nullptr},
    {SIGHUP, MasterAction::kReload, "reload"},
    {SIGTERM, MasterAction::kFastStop, "stop"},
    {SIGINT, MasterAction::kFastStop, nullptr},
    {SIGQUIT, MasterAction::kGracefulStop, "quit"},
    {SIGUSR1, MasterAction::kReopenLogs, "reopen"},
    {SIGTTIN, MasterAction::kScaleUp, nullptr},
    {SIGTTOU, MasterAction::kScaleDown, nullptr},
    {SIGTRAP, MasterAction::kProfile, "profile"},
    {SIGURG, MasterAction::kHeapProfile, "heap"},
    {SIGUSR2, MasterAction::kUpgrade, "upgrade"},
};

// The row of `signal`; nullopt for a signal the master does not handle.
std::optional<SignalRow> signalRow(int signal);
// The signal `-s name` sends; 0 for an unknown name.
int signalForAction(const std::string& name);
// Every `-s` name, in table order.
std::vector<std::string> actionNames();

}  // namespace tcpfork
