#include "worker/buffer_budget.h"

#include <algorithm>
#include <vector>

#include <spdlog/spdlog.h>

#include "worker/connection.h"

namespace tcpfork {

BufferBudget::BufferBudget(size_t limit, const Connections& connections, const PendingTable& pendings,
                           std::function<void(bool)> accepting)
    : limit_(limit), connections_(connections), pendings_(pendings), accepting_(std::move(accepting)) {}

void BufferBudget::overBudget() {
  if (shedding_) return;
  shedding_ = true;
  shed();
  shedding_ = false;
}

void BufferBudget::shed() {
  size_t before = sum_;
  std::vector<Connection*> holding;
  for (const auto& entry : connections_) {
    if (entry.second->buffered() > 0) holding.push_back(entry.second.get());
  }
  std::sort(holding.begin(), holding.end(), [](Connection* a, Connection* b) { return a->buffered() > b->buffered(); });
  size_t closed = 0;
  size_t largest = holding.empty() ? 0 : holding.front()->buffered();
  for (Connection* connection : holding) {
    if (sum_ <= lowMark()) break;
    connection->shed();  // takes its share out of the sum at once
    ++closed;
  }
  log_.warn("max_buffered_bytes ({} bytes) passed: connections held {} bytes in unfinished frames and unsent acks; "
            "closed the {} holding the most (largest {} bytes), {} bytes left over {} connections",
            limit_, before, closed, largest, sum_, holding.size() - closed);
}

void BufferBudget::gate() {
  if (gated_) return;
  gated_ = true;
  accepting_(false);
  gateLog_.warn("max_buffered_bytes ({} bytes) reached with {} requests pending in the handler ({} bytes with what "
                "the connections hold): reading and accepting stop until they complete",
                limit_, pendings_.live(), held());
}

void BufferBudget::pendingsDone() {
  if (!gated_ || held() > lowMark()) return;
  gated_ = false;
  spdlog::info("pending requests down to {} ({} bytes held, under {}): reading and accepting again", pendings_.live(),
               held(), lowMark());
  accepting_(true);
  for (const auto& entry : connections_) entry.second->resume();
}

}  // namespace tcpfork
