// SymbolTable: the master's bounded reading of a worker's symbol table.

#include "master/profiling/symbol_table.h"

#include <gtest/gtest.h>

namespace tcpfork {
namespace {

TEST(SymbolTable, NamesAnAddressInsideAFunctionOnly) {
  SymbolTable t = SymbolTable::parse("tcpfork-symbols 1\n2000 10 _ZN7tcpfork6Worker3runEv\n1000 20 burn_cpu\n");
  EXPECT_EQ(t.size(), 2u);
  ASSERT_NE(t.lookup(0x1000), nullptr);
  EXPECT_EQ(*t.lookup(0x1000), "burn_cpu");
  EXPECT_EQ(*t.lookup(0x101f), "burn_cpu");
  EXPECT_EQ(t.lookup(0x1020), nullptr);
  EXPECT_EQ(t.lookup(0xfff), nullptr);
  EXPECT_EQ(*t.lookup(0x200f), "_ZN7tcpfork6Worker3runEv");
  EXPECT_EQ(t.lookup(0x2010), nullptr);
}

TEST(SymbolTable, RefusesWhatAWorkerNeverWrites) {
  for (const char* text : {
           "",                                               // no header
           "tcpfork-symbols 2\n",                            // another format
           "tcpfork-symbols 1\n1000 20 burn",                // unterminated
           "tcpfork-symbols 1\n1000 20\n",                   // no symbol
           "tcpfork-symbols 1\nzz 20 burn\n",                // not hex
           "tcpfork-symbols 1\n1000 0 burn\n",               // empty function
           "tcpfork-symbols 1\n11112222333344445 1 burn\n",  // past 64 bits
           "tcpfork-symbols 1\nffffffffffffffff 2 burn\n",   // wraps
           "tcpfork-symbols 1\n1000 20 a\x1b[2Jb\n",         // not printable
       }) {
    EXPECT_THROW(SymbolTable::parse(text), std::runtime_error) << text;
  }
  std::string longName = "tcpfork-symbols 1\n1000 20 " + std::string(SymbolTable::kMaxSymbolBytes + 1, 'a') + "\n";
  EXPECT_THROW(SymbolTable::parse(longName), std::runtime_error);
  std::string many = "tcpfork-symbols 1\n";
  for (size_t i = 0; i <= SymbolTable::kMaxFunctions; ++i) many += "1 1 a\n";
  EXPECT_THROW(SymbolTable::parse(many), std::runtime_error);
}

}  // namespace
}  // namespace tcpfork
