#pragma once
// SymbolTable: the functions a worker named for one of its profiles (the
// "<profile>.sym" file, worker/profile_symbols.h), for the pprof tools'
// symbol requests. The file is the workers' user's, so the parse is bounded:
// at most kMaxFunctions lines, a symbol of at most kMaxSymbolBytes printable
// characters, hex numbers that fit 64 bits; anything else throws.

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tcpfork {

class SymbolTable {
 public:
  static constexpr size_t kMaxFunctions = 1 << 18;
  static constexpr size_t kMaxSymbolBytes = 4096;

  // Throws std::runtime_error naming the line and what is wrong with it.
  static SymbolTable parse(std::string_view text);

  // The symbol of the function holding `address`, or null.
  const std::string* lookup(uint64_t address) const;
  size_t size() const { return functions_.size(); }

 private:
  struct Function {
    uint64_t start;
    uint64_t size;
    std::string symbol;
  };
  std::vector<Function> functions_;  // by start
};

}  // namespace tcpfork
