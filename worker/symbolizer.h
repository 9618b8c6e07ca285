#pragma once
// Symbolizer: names addresses of this process from the symbol tables and
// DWARF of every file mapped when it was made (the worker, its libraries and
// the handler modules loaded then), through libdw (elfutils). Used outside
// any signal handler: by StackDump's thread and by the profilers when a
// profile is complete.

#include <elfutils/libdwfl.h>

#include <cstdint>
#include <optional>
#include <string>

namespace tcpfork {

// The C++ name of a mangled symbol, else the symbol as it is.
std::string demangle(const char* symbol);

class Symbolizer {
 public:
  Symbolizer();
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // "test_handle (test_handler.c:212) in /usr/lib/x/test.so"; `pc` is a
  // return address but for the innermost frame, so one byte back is the call.
  std::string describe(void* frame, bool innermost);
  // The kernel returns from a handler into glibc's __restore_rt, so the
  // handler's frame holds that function's own address (not a call's).
  bool isSignalTrampoline(void* frame);

  // The function whose code holds `at`: where it starts, its size in bytes
  // (at least 1) and its symbol as the file has it (mangled).
  struct Function {
    uint64_t start;
    uint64_t size;
    std::string symbol;
  };
  std::optional<Function> function(uint64_t at);

 private:
  Dwfl_Callbacks callbacks_{};
  char* debuginfoPath_ = nullptr;
  Dwfl* dwfl_ = nullptr;
};

}  // namespace tcpfork
