#include "worker/allocator.h"

#include <dlfcn.h>
#include <gperftools/malloc_extension.h>

namespace tcpfork::allocator {

// A sanitizer build (TCPFORK_SYSTEM_ALLOCATOR) compiles no call into
// MallocExtension at all: tcmalloc is not linked, and UBSan's vptr check on
// a virtual call would need its typeinfo.
#ifdef TCPFORK_SYSTEM_ALLOCATOR
bool usingTcmalloc() { return false; }
bool heapSample(std::string&) { return false; }
size_t releaseFreePagesOver(size_t) { return 0; }
void returnFreedPagesAtOnce(bool) {}
#else
namespace {

// tcmalloc's MallocExtension::instance(), if tcmalloc is this process's
// allocator: looked up, not linked, so the glibc worker builds from the same
// library.
MallocExtension* tcmalloc() {
  using Instance = MallocExtension* (*)();
  static auto instance = reinterpret_cast<Instance>(::dlsym(RTLD_DEFAULT, "_ZN15MallocExtension8instanceEv"));
  return instance ? instance() : nullptr;
}

}  // namespace

bool usingTcmalloc() { return tcmalloc() != nullptr; }

bool heapSample(std::string& text) {
  MallocExtension* extension = tcmalloc();
  if (!extension) return false;
  extension->GetHeapSample(&text);
  return true;
}

size_t releaseFreePagesOver(size_t keep) {
  MallocExtension* extension = tcmalloc();
  size_t freeBytes = 0;
  if (!extension || !extension->GetNumericProperty("tcmalloc.pageheap_free_bytes", &freeBytes) || freeBytes <= keep) return 0;
  extension->ReleaseToSystem(freeBytes - keep);
  return freeBytes - keep;
}

void returnFreedPagesAtOnce(bool on) {
  MallocExtension* extension = tcmalloc();
  if (!extension) return;
  extension->SetNumericProperty("tcmalloc.aggressive_memory_decommit", on ? 1 : 0);
  if (on) extension->ReleaseFreeMemory();
}
#endif

}  // namespace tcpfork::allocator
