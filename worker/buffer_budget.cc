#include "worker/buffer_budget.h"

#include <algorithm>
#include <vector>

#include <spdlog/spdlog.h>

namespace tcpfork {

BufferBudget::BufferBudget(size_t limit, ConnectionContext& context, const Connections& connections,
                           const PendingTable& pendings, std::function<void(bool)> accepting)
    : limit_(limit), context_(context), connections_(connections), pendings_(pendings), accepting_(std::move(accepting)) {
  context_.maxBufferedBytes = limit_;
  context_.overPending = [this] { gate(); };
  context_.overBudget = [this] {
    if (shedding_) return;
    shedding_ = true;
    shed();
    shedding_ = false;
  };
}

void BufferBudget::shed() {
  size_t before = context_.bufferedBytes;
  std::vector<Connection*> holding;
  for (const auto& entry : connections_) {
    if (entry.second->buffered() > 0) holding.push_back(entry.second.get());
  }
  std::sort(holding.begin(), holding.end(), [](Connection* a, Connection* b) { return a->buffered() > b->buffered(); });
  size_t closed = 0;
  size_t largest = holding.empty() ? 0 : holding.front()->buffered();
  for (Connection* connection : holding) {
    if (context_.bufferedBytes <= lowMark()) break;
    connection->shed();  // takes its share out of bufferedBytes at once
    ++closed;
  }
  log_.warn("max_buffered_bytes ({} bytes) passed: connections held {} bytes in unfinished frames and unsent acks; "
            "closed the {} holding the most (largest {} bytes), {} bytes left over {} connections",
            limit_, before, closed, largest, context_.bufferedBytes, holding.size() - closed);
}

void BufferBudget::gate() {
  if (context_.gated) return;
  context_.gated = true;
  accepting_(false);
  gateLog_.warn("max_buffered_bytes ({} bytes) reached with {} requests pending in the handler ({} bytes with what "
                "the connections hold): reading and accepting stop until they complete",
                limit_, pendings_.live(), held());
}

void BufferBudget::pendingsDone() {
  if (!context_.gated || held() > lowMark()) return;
  context_.gated = false;
  spdlog::info("pending requests down to {} ({} bytes held, under {}): reading and accepting again", pendings_.live(),
               held(), lowMark());
  accepting_(true);
  for (const auto& entry : connections_) entry.second->resume();
}

}  // namespace tcpfork
