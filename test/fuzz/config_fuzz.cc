// libFuzzer target: the config loader on arbitrary YAML. Whatever the file,
// loadConfig either returns a valid Config or throws ConfigError (a message
// naming the key or the syntax error); any other exception, crash or hang is a
// bug.

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "master/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const struct File {
    std::string path = "/tmp/tcpfork-config-fuzz-" + std::to_string(::getpid()) + ".yaml";
    ~File() { ::unlink(path.c_str()); }
  } kFile;
  const std::string& path = kFile.path;
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  }
  try {
    tcpfork::Config c = tcpfork::loadConfig(path);
    if (c.listen.empty() || c.effectiveWorkers() == 0) std::abort();
  } catch (const tcpfork::ConfigError&) {
    // The expected way to refuse.
  }
  return 0;
}
