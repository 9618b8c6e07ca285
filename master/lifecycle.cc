#include "master/lifecycle.h"

namespace tcpfork {

std::string_view phaseName(Lifecycle::Phase phase) {
  switch (phase) {
    case Lifecycle::Phase::kStarting: return "starting";
    case Lifecycle::Phase::kServing: return "serving";
    case Lifecycle::Phase::kStoppingGracefully: return "stopping gracefully";
    case Lifecycle::Phase::kStoppingFast: return "stopping fast";
    case Lifecycle::Phase::kDone: return "done";
  }
  return "?";
}

Lifecycle::Actions Lifecycle::on(const Event& event) {
  using enum EventKind;
  switch (event.kind) {
    case kWorkersServe:
      if (phase_ != Phase::kStarting) return {};
      phase_ = Phase::kServing;
      return kAnnounceReady;

    case kReloadAsked:
      if (stopping()) return {};
      if (reload_ == Reload::kSwitching || reload_ == Reload::kQueued) {
        // The file is read when the reload runs, so the newest edit wins.
        reload_ = Reload::kQueued;
        return kSayReloadWaits;
      }
      reload_ = Reload::kReading;
      return kNotifyReloading | kReadConfig;
    case kReloadStarted:
      if (reload_ == Reload::kReading) reload_ = Reload::kSwitching;
      return {};
    case kReloadRefused:
      if (reload_ != Reload::kReading) return {};
      reload_ = Reload::kIdle;
      return kNotifyReady;
    case kReloadSettled:
      if (reload_ == Reload::kSwitching) {
        reload_ = Reload::kIdle;
        return kNotifyReady;
      }
      if (reload_ == Reload::kQueued) {
        // RELOADING=1 again: a HUP from systemd (Type=notify-reload) waits
        // for one sent after it, then for READY=1.
        reload_ = Reload::kReading;
        return kNotifyReloading | kReadConfig;
      }
      return {};

    case kUpgradeAsked:
      if (stopping() || upgrade_ != Upgrade::kNone) return {};
      return kStartUpgrade;
    case kUpgradeStarted:
      if (upgrade_ == Upgrade::kNone) upgrade_ = Upgrade::kStarting;
      return {};
    case kUpgradeServes:
      if (upgrade_ == Upgrade::kQuitWhenServes) {
        upgrade_ = Upgrade::kHandedOver;
        return beginStop(Phase::kStoppingGracefully, event);
      }
      if (upgrade_ == Upgrade::kStarting) upgrade_ = Upgrade::kHandedOver;
      return {};
    case kUpgradeFailed:
      upgrade_ = Upgrade::kNone;
      // The service is this master's again (or ends with it, if it stops).
      return stopping() ? kReclaimService : kNotifyMainPid | kReclaimService;

    case kQuit:
      if (stopping()) return {};
      // nginx's "QUIT the old master" after USR2, made safe for any moment:
      // stopping while the new master still starts would leave nothing
      // serving, and if it then failed, nothing at all.
      if (upgrade_ == Upgrade::kStarting) {
        upgrade_ = Upgrade::kQuitWhenServes;
        return kSayQuitWaits;
      }
      if (upgrade_ == Upgrade::kQuitWhenServes) return {};
      return beginStop(Phase::kStoppingGracefully, event);
    case kFastStop:
      if (phase_ == Phase::kDone) return {};
      return beginStop(Phase::kStoppingFast, event);

    case kTick:
      if (!stopping() || phase_ == Phase::kDone || event.now < stopDeadline_) return {};
      stopDeadline_ = event.now + kStopGrace;
      return kKillWorkers;
    case kWorkersGone:
      if (!stopping() || phase_ == Phase::kDone) return {};
      phase_ = Phase::kDone;
      return kExitLoop;
  }
  return {};
}

Lifecycle::Actions Lifecycle::beginStop(Phase to, const Event& event) {
  phase_ = to;
  // A stop ends a reload's switch; STOPPING=1 stands for the READY=1 it owed.
  reload_ = Reload::kIdle;
  Millis drain = to == Phase::kStoppingGracefully ? event.drainTimeout : Millis(0);
  stopDeadline_ = event.now + drain + kStopGrace;
  // Only a fast stop finds a new master still starting (a QUIT waits for
  // it): it stops the whole service, that new master included.
  bool newMasterStarting = upgrade_ == Upgrade::kStarting || upgrade_ == Upgrade::kQuitWhenServes;
  return newMasterStarting ? kAbortUpgrade | kStopWorkers : kStopWorkers;
}

}  // namespace tcpfork
