// PyTorch on Apple GPUs (MPS) through ATen's MPS hooks, which tch does not
// bind: synchronise the device (torch.mps.synchronize), read the MPS
// allocator's memory (torch.mps.current_allocated_memory and
// driver_allocated_memory) and the macOS version MPS checks its kernels
// against. In a libtorch without MPS (Linux) the hooks throw; the error
// comes back as a message, as every shim call's does.

#include <cstdint>

#include <ATen/detail/MPSHooksInterface.h>

#include "common.h"

extern "C" {

char* fwt_mps_synchronize() {
  return fwt::guarded([] { at::detail::getMPSHooks().deviceSynchronize(); });
}

char* fwt_mps_memory(uint64_t* current, uint64_t* driver) {
  return fwt::guarded([&] {
    const auto& hooks = at::detail::getMPSHooks();
    *current = hooks.getCurrentAllocatedMemory();
    *driver = hooks.getDriverAllocatedMemory();
  });
}

char* fwt_mps_macos_at_least(unsigned major, unsigned minor, int* answer) {
  return fwt::guarded([&] {
    *answer = at::detail::getMPSHooks().isOnMacOSorNewer(major, minor) ? 1 : 0;
  });
}

}  // extern "C"
