#pragma once
// How every shared-memory stats field is read and written: relaxed atomics
// through std::atomic_ref on plain integers (a plain move on x86), so the
// structs stay trivially copyable and no field is ever torn.

#include <atomic>
#include <cstdint>

namespace tcpfork::stats {

inline uint64_t load(const uint64_t& field) {
  return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(field)).load(std::memory_order_relaxed);
}
inline void store(uint64_t& field, uint64_t value) {
  std::atomic_ref<uint64_t>(field).store(value, std::memory_order_relaxed);
}
// Single-writer increment: a plain load and store, no locked instruction.
inline void add(uint64_t& field, uint64_t by) { store(field, load(field) + by); }
inline uint64_t loadAcquire(const uint64_t& field) {
  return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(field)).load(std::memory_order_acquire);
}
inline void storeRelease(uint64_t& field, uint64_t value) {
  std::atomic_ref<uint64_t>(field).store(value, std::memory_order_release);
}

}  // namespace tcpfork::stats
