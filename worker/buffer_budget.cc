#include "worker/buffer_budget.h"

#include <spdlog/spdlog.h>

namespace tcpfork {

BufferBudget::BufferBudget(size_t limit, const PendingTable& pendings, Hooks hooks)
    : limit_(limit), pendings_(pendings), hooks_(std::move(hooks)) {}

void BufferBudget::overHalf() {
  if (!pressed_) {
    pressed_ = true;
    if (hooks_.pressure) hooks_.pressure(true);
  }
  if (sum_ > limit_) overBudget();
}

void BufferBudget::tick() {
  if (!pressed_ || sum_ >= limit_ / 4) return;
  pressed_ = false;
  if (hooks_.pressure) hooks_.pressure(false);
}

void BufferBudget::overBudget() {
  if (shedding_) return;
  shedding_ = true;
  shed();
  shedding_ = false;
}

void BufferBudget::shed() {
  size_t before = sum_;
  Round round = hooks_.shed();
  log_.warn("max_buffered_bytes ({} bytes) passed: connections held {} bytes in unfinished frames and unsent acks; "
            "closed the {} holding the most (largest {} bytes), {} bytes left over {} connections",
            limit_, before, round.closed, round.largest, sum_, round.holding - round.closed);
}

void BufferBudget::gate() {
  if (gated_) return;
  gated_ = true;
  hooks_.accepting(false);
  gateLog_.warn("max_buffered_bytes ({} bytes) reached with {} requests pending in the handler ({} bytes with what "
                "the connections hold): reading and accepting stop until they complete",
                limit_, pendings_.live(), held());
}

void BufferBudget::pendingsDone() {
  if (!gated_ || held() > lowMark()) return;
  gated_ = false;
  spdlog::info("pending requests down to {} ({} bytes held, under {}): reading and accepting again", pendings_.live(),
               held(), lowMark());
  hooks_.accepting(true);
  hooks_.resume();
}

}  // namespace tcpfork
