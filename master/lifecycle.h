#pragma once
// Lifecycle: the master's own state, as opposed to its workers' (those are
// the Supervisor's rows, master/supervise/process_table.h). Three parts that
// move independently: the master's life, a reload (HUP) and a binary upgrade
// (USR2). Every event goes through one transition function, on(), which
// changes the state along the edges below and answers what the Master must
// do about it (Actions); an event without an edge in the current state
// changes nothing. Owned by the Master, on its loop; the Supervisor asks it
// whether, and how, the master stops.
//
// The master's life:
//
//                        all workers serve
//        starting -----------------------------> serving
//          |  |          (announce ready)          |  |
//          |  +--- QUIT --+                        |  |
//          |              v                        |  |
//          |      stopping gracefully <--- QUIT ---+  |
//          |      (deadline: drain_timeout + 3 s)     |
//          |              |                           |
//          |            TERM                          |
//          |              v                           |
//          +--- TERM ---> stopping fast <--- TERM ----+
//                         (deadline: 3 s)
//
//   QUIT: while a new master starts, held back until it serves (below).
//   TERM: also INT, and a starting master whose readiness cannot be announced.
//   stopping fast -- TERM again --> itself: the workers told again, 3 s more.
//   either stop -- past its deadline --> itself: SIGKILL what runs, 3 s more.
//   either stop -- no worker runs --> done: the loop exits.
//
// A reload, while not stopping:
//
//               HUP               started               settled
//     idle -------------> reading ---------> switching -----------> idle
//      ^     RELOADING=1     |                 |          READY=1
//      |                     |                HUP    (served, or abandoned)
//      +------ refused ------+                 v
//              READY=1                       queued ---settled---> reading
//                                  (HUP again: the         RELOADING=1
//                                  newest file wins)
//
//   any -- a stop begins --> idle (STOPPING=1 follows; no READY=1).
//
// A binary upgrade:
//
//               USR2: started             it serves
//     none ----------------------> starting ----------> handed over
//      ^                             |                  (serves beside the new
//      |                            QUIT                 master until QUIT)
//      |                             v                         ^
//      |                    quit when it serves --it serves----+ and stop
//      |                                                         gracefully
//      +--- it failed (from any of them; a fast stop kills a new master
//           still starting, which then fails)
//
//   USR2 is refused while stopping, and while an upgrade is not none.

#include <chrono>
#include <cstdint>
#include <string_view>

#include "master/config/config.h"

namespace tcpfork {

class Lifecycle {
 public:
  using Clock = std::chrono::steady_clock;

  enum class Phase { kStarting, kServing, kStoppingGracefully, kStoppingFast, kDone };
  enum class Reload { kIdle, kReading, kSwitching, kQueued };
  enum class Upgrade { kNone, kStarting, kQuitWhenServes, kHandedOver };

  enum class EventKind {
    kWorkersServe,    // every configured worker serves
    kReloadAsked,     // SIGHUP
    kReloadStarted,   // the next generation is starting
    kReloadRefused,   // the config was refused, or no generation could start
    kReloadSettled,   // no generation is starting (any more)
    kUpgradeAsked,    // SIGUSR2
    kUpgradeStarted,  // the new master runs
    kUpgradeServes,   // the new master said READY
    kUpgradeFailed,   // it did not, or died since
    kQuit,            // SIGQUIT, or a graceful stop the master decided itself
    kFastStop,        // SIGTERM, SIGINT, or a fast stop the master decided itself
    kTick,            // time passes: the stop deadline
    kWorkersGone,     // no worker process runs
  };
  struct Event {
    EventKind kind;
    Clock::time_point now;
    Millis drainTimeout{0};  // kQuit, kUpgradeServes: how long workers may drain
  };

  // What the Master does after an event, in this order.
  enum Action : unsigned {
    kAbortUpgrade = 1u << 0,     // kill a new master still starting
    kStopWorkers = 1u << 1,      // a stop began: tell the workers (stoppingFast() says how)
    kAnnounceReady = 1u << 2,    // READY to systemd, the daemon pipe, the old master
    kNotifyMainPid = 1u << 3,    // MAINPID=us, READY=1: serving on after a failed upgrade
    kReclaimService = 1u << 4,   // take back the pidfile, the segment's name, steering
    kNotifyReloading = 1u << 5,  // RELOADING=1
    kReadConfig = 1u << 6,       // read the config and start the next generation
    kNotifyReady = 1u << 7,      // READY=1: a reload is over
    kSayReloadWaits = 1u << 8,   // log: this HUP runs once the starting generation settles
    kStartUpgrade = 1u << 9,     // start the new master
    kSayQuitWaits = 1u << 10,    // log: this QUIT waits for the new master
    kKillWorkers = 1u << 11,     // the stop's deadline passed
    kExitLoop = 1u << 12,
  };
  class Actions {
   public:
    Actions(unsigned bits = 0) : bits_(bits) {}
    bool has(Action a) const { return (bits_ & a) != 0; }
    bool none() const { return bits_ == 0; }
    unsigned bits() const { return bits_; }

   private:
    unsigned bits_;
  };

  // Past its deadline, a stop kills what still runs and waits this long more.
  static constexpr Millis kStopGrace{3000};

  // The one transition function.
  Actions on(const Event& event);

  Phase phase() const { return phase_; }
  Reload reload() const { return reload_; }
  Upgrade upgrade() const { return upgrade_; }
  // From the first stop event on: nothing starts, nothing is restarted.
  bool stopping() const {
    return phase_ == Phase::kStoppingGracefully || phase_ == Phase::kStoppingFast || phase_ == Phase::kDone;
  }
  bool stoppingFast() const { return phase_ == Phase::kStoppingFast; }
  // The new master of an upgrade serves: the service goes on there.
  bool handedOver() const { return upgrade_ == Upgrade::kHandedOver; }
  Clock::time_point stopDeadline() const { return stopDeadline_; }

 private:
  Actions beginStop(Phase to, const Event& event);

  Phase phase_ = Phase::kStarting;
  Reload reload_ = Reload::kIdle;
  Upgrade upgrade_ = Upgrade::kNone;
  Clock::time_point stopDeadline_;
};

std::string_view phaseName(Lifecycle::Phase phase);

}  // namespace tcpfork
