// The journal as a tcpfork handler module: the ABI's entry point and its
// callbacks, which keep C++ exceptions on this side of the C boundary.

#include <tcpfork/handler.h>

#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "handlers/journal/journal.h"
#include "handlers/journal/options.h"

namespace {

using tcpfork::journal::Journal;

struct State {
  Journal journal;
  const tcpfork_host_api* api;
  tcpfork_host* host;
};

void logException(State* state, const char* where, const std::exception* e) {
  std::string message = std::string(where) + ": " + (e ? e->what() : "unknown exception");
  state->api->log(state->host, 3, message.c_str());
}

void* journalInit(tcpfork_host* host, const tcpfork_host_api* api, const char* configJson, char* err, size_t errLen) {
  try {
    auto options = tcpfork::journal::parseOptions(configJson ? configJson : "null");
    return new State{Journal(options, host, api), api, host};
  } catch (const std::exception& e) {
    std::snprintf(err, errLen, "%s", e.what());
  } catch (...) {
    std::snprintf(err, errLen, "unknown exception");
  }
  return nullptr;
}

int journalHandle(void* opaque, const tcpfork_request* request, tcpfork_pending* pending) {
  auto* state = static_cast<State*>(opaque);
  try {
    return state->journal.handle(*request, pending);
  } catch (const std::exception& e) {
    logException(state, "handle", &e);
  } catch (...) {
    logException(state, "handle", nullptr);
  }
  return tcpfork::journal::kResultNotStored;
}

void journalBatchEnd(void* opaque) {
  auto* state = static_cast<State*>(opaque);
  try {
    state->journal.batchEnd();
  } catch (const std::exception& e) {
    logException(state, "batch_end", &e);
  } catch (...) {
    logException(state, "batch_end", nullptr);
  }
}

void journalDestroy(void* opaque) { delete static_cast<State*>(opaque); }

constexpr tcpfork_handler kJournal = {
    TCPFORK_HANDLER_ABI_VERSION, "journal", journalInit, journalHandle, journalBatchEnd, nullptr, nullptr,
    journalDestroy,
};

}  // namespace

extern "C" const tcpfork_handler* tcpfork_handler_entry(void) { return &kJournal; }
