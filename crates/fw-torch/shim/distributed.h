// What both halves of fw-torch's distributed shim share.
#pragma once

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

namespace fwt {

// A c10d::ProcessGroup over one backend, as init_process_group builds it:
// the backend serves `device`'s tensors and is the group's default.
inline c10::intrusive_ptr<c10d::ProcessGroup> process_group(
    const c10::intrusive_ptr<c10d::Store>& store,
    const c10::intrusive_ptr<c10d::Backend>& backend, c10::DeviceType device,
    c10d::ProcessGroup::BackendType type) {
  auto group = c10::make_intrusive<c10d::ProcessGroup>(
      store, backend->getRank(), backend->getSize());
  group->setBackend(device, type, backend);
  group->setDefaultBackend(type);
  return group;
}

}  // namespace fwt
