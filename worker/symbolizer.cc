#include "worker/symbolizer.h"

#include <cxxabi.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <memory>

namespace tcpfork {

std::string demangle(const char* symbol) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> plain(abi::__cxa_demangle(symbol, nullptr, nullptr, &status), &std::free);
  return status == 0 && plain ? plain.get() : symbol;
}

Symbolizer::Symbolizer() {
  callbacks_.find_elf = dwfl_linux_proc_find_elf;
  callbacks_.find_debuginfo = dwfl_standard_find_debuginfo;
  callbacks_.debuginfo_path = &debuginfoPath_;
  dwfl_ = dwfl_begin(&callbacks_);
  if (dwfl_ && (dwfl_linux_proc_report(dwfl_, ::getpid()) != 0 || dwfl_report_end(dwfl_, nullptr, nullptr) != 0)) {
    dwfl_end(dwfl_);
    dwfl_ = nullptr;
  }
}

Symbolizer::~Symbolizer() {
  if (dwfl_) dwfl_end(dwfl_);
}

std::string Symbolizer::describe(void* frame, bool innermost) {
  auto pc = reinterpret_cast<Dwarf_Addr>(frame);
  Dwarf_Addr at = innermost ? pc : pc - 1;
  Dwfl_Module* module = dwfl_ ? dwfl_addrmodule(dwfl_, at) : nullptr;
  if (!module) return fmt::format("{:#x} (no file mapped here)", pc);
  const char* file = dwfl_module_info(module, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
  const char* symbol = dwfl_module_addrname(module, at);
  std::string out = symbol ? demangle(symbol) : fmt::format("{:#x}", pc);
  int line = 0;
  Dwfl_Line* source = dwfl_module_getsrc(module, at);
  const char* path = source ? dwfl_lineinfo(source, nullptr, &line, nullptr, nullptr, nullptr) : nullptr;
  if (path) {
    const char* base = std::strrchr(path, '/');
    out += fmt::format(" ({}:{})", base ? base + 1 : path, line);
  }
  return out + " in " + (file ? file : "?");
}

bool Symbolizer::isSignalTrampoline(void* frame) {
  auto at = reinterpret_cast<Dwarf_Addr>(frame);
  Dwfl_Module* module = dwfl_ ? dwfl_addrmodule(dwfl_, at) : nullptr;
  const char* symbol = module ? dwfl_module_addrname(module, at) : nullptr;
  return symbol && std::strcmp(symbol, "__restore_rt") == 0;
}

std::optional<Symbolizer::Function> Symbolizer::function(uint64_t at) {
  Dwfl_Module* module = dwfl_ ? dwfl_addrmodule(dwfl_, at) : nullptr;
  if (!module) return std::nullopt;
  GElf_Off offset = 0;
  GElf_Sym sym{};
  const char* symbol = dwfl_module_addrinfo(module, at, &offset, &sym, nullptr, nullptr, nullptr);
  if (!symbol || !*symbol || offset > at) return std::nullopt;
  // A symbol of unknown size covers only the address asked about.
  uint64_t size = sym.st_size > offset ? sym.st_size : offset + 1;
  return Function{at - offset, size, symbol};
}

}  // namespace tcpfork
