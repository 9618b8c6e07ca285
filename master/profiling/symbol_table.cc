#include "master/profiling/symbol_table.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace tcpfork {
namespace {

bool hexNumber(std::string_view text, uint64_t& out) {
  if (text.empty() || text.size() > 16) return false;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out, 16);
  return error == std::errc() && end == text.data() + text.size();
}

}  // namespace

SymbolTable SymbolTable::parse(std::string_view text) {
  constexpr std::string_view kHeader = "tcpfork-symbols 1\n";
  if (!text.starts_with(kHeader)) throw std::runtime_error("not a symbol table (no 'tcpfork-symbols 1' line)");
  text.remove_prefix(kHeader.size());
  SymbolTable table;
  size_t lineNumber = 1;
  while (!text.empty()) {
    ++lineNumber;
    size_t end = text.find('\n');
    if (end == std::string_view::npos) throw std::runtime_error(fmt::format("line {}: unterminated", lineNumber));
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end + 1);
    if (table.functions_.size() == kMaxFunctions) {
      throw std::runtime_error(fmt::format("more than {} functions", kMaxFunctions));
    }
    size_t first = line.find(' ');
    size_t second = first == std::string_view::npos ? first : line.find(' ', first + 1);
    Function f{};
    if (second == std::string_view::npos || !hexNumber(line.substr(0, first), f.start) ||
        !hexNumber(line.substr(first + 1, second - first - 1), f.size) || f.size == 0 ||
        f.start + f.size < f.start) {
      throw std::runtime_error(fmt::format("line {}: not '<start> <size> <symbol>'", lineNumber));
    }
    std::string_view symbol = line.substr(second + 1);
    if (symbol.empty() || symbol.size() > kMaxSymbolBytes ||
        !std::all_of(symbol.begin(), symbol.end(), [](char c) { return c > ' ' && c < 0x7f; })) {
      throw std::runtime_error(fmt::format("line {}: the symbol is empty, longer than {} bytes or not printable",
                                           lineNumber, kMaxSymbolBytes));
    }
    f.symbol = symbol;
    table.functions_.push_back(std::move(f));
  }
  std::sort(table.functions_.begin(), table.functions_.end(),
            [](const Function& a, const Function& b) { return a.start < b.start; });
  return table;
}

const std::string* SymbolTable::lookup(uint64_t address) const {
  auto after = std::upper_bound(functions_.begin(), functions_.end(), address,
                                [](uint64_t a, const Function& f) { return a < f.start; });
  if (after == functions_.begin()) return nullptr;
  const Function& f = *std::prev(after);
  return address - f.start < f.size ? &f.symbol : nullptr;
}

}  // namespace tcpfork
