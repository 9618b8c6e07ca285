#pragma once
// The symbol table a worker writes beside each profile, so that the master
// can answer the pprof tools' symbol requests (/debug/pprof/symbol) for the
// addresses of that profile without reading any binary itself: this process
// names its own addresses, with every file it has mapped (the worker, its
// libraries, the handler modules) at the place it is mapped.
//
// The file is text, one function a line, after a first line naming the format:
//   tcpfork-symbols 1
//   <start, hex> <size, hex> <symbol as the file has it, mangled>
// The master reads it with bounds (master/profiling/symbol_table.h).

#include <cstdint>
#include <string>
#include <vector>

namespace tcpfork {

// Writes the functions that hold `addresses` (each, and the byte before it,
// where a caller's call instruction is) to `path`, through "<path>.tmp" and a
// rename. Returns how many functions; throws std::system_error naming the file.
size_t writeSymbolTable(const std::vector<uint64_t>& addresses, const std::string& path);

// Writes `text` to `path` through "<path>.tmp" and a rename, so that the
// master never reads half a file; throws std::system_error naming the file.
void writeTextFile(const std::string& path, const std::string& text);

}  // namespace tcpfork
