// fw-torch's libtorch shim, distributed part (CPU): PyTorch's own c10d
// process groups, as torch.distributed creates them, for what tch does not
// bind. ProcessGroupGloo, the FileStore and the Backend interface are
// libtorch_cpu's; the gloo headers that the torch wheel leaves out are
// declared in gloo-declarations/ (see its README). The NCCL process group
// needs libtorch_cuda and lives in distributed_nccl.cpp.
//
// A process group crosses into Rust as a c10d::Backend* holding one
// reference (freed with fwt_dist_free), a pending collective as a
// c10d::Work* likewise (fwt_dist_work_free). Functions returning char*
// return NULL on success or a malloc'ed message (fwt_free_message).

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "common.h"

#include <chrono>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

namespace {

c10d::Backend* backend_of(void* handle) {
  return static_cast<c10d::Backend*>(handle);
}

// The devices torch.distributed gives gloo: one per interface named in
// GLOO_SOCKET_IFNAME (comma-separated), else the address this host's name
// resolves to, falling back to loopback.
std::vector<std::shared_ptr<::gloo::transport::Device>> gloo_devices() {
  std::vector<std::shared_ptr<::gloo::transport::Device>> devices;
  const char* names = std::getenv("GLOO_SOCKET_IFNAME");
  if (names != nullptr && names[0] != '\0') {
    std::stringstream list(names);
    std::string name;
    while (std::getline(list, name, ',')) {
      devices.push_back(
          c10d::ProcessGroupGloo::createDeviceForInterface(name));
    }
  } else {
    devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  return devices;
}

}  // namespace

extern "C" {

// Joins the gloo process group of `size` ranks as `rank`, meeting the
// others through a FileStore at `store_path` (a file none of them has used
// before, on a file system they share). Waits until every rank has joined
// or `timeout_ms` has passed, which is also each collective's limit.
char* fwt_dist_gloo_new(const char* store_path, int rank, int size,
                        int64_t timeout_ms, void** out) {
  return fwt::guarded([&] {
    const std::chrono::milliseconds timeout(timeout_ms);
    auto store = c10::make_intrusive<c10d::FileStore>(store_path, size);
    store->setTimeout(timeout);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    options->devices = gloo_devices();
    c10::intrusive_ptr<c10d::Backend> group =
        c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size,
                                                    options);
    *out = group.release();
  });
}

void fwt_dist_free(void* handle) {
  if (handle != nullptr) {
    c10::intrusive_ptr<c10d::Backend>::reclaim(backend_of(handle));
  }
}

int fwt_dist_rank(void* handle) { return backend_of(handle)->getRank(); }

int fwt_dist_size(void* handle) { return backend_of(handle)->getSize(); }

// Starts summing `tensor` over the group, in place (c10d's allreduce with
// ReduceOp::SUM); `*work` is the pending collective.
char* fwt_dist_allreduce(void* handle, at::Tensor* tensor, void** work) {
  return fwt::guarded([&] {
    std::vector<at::Tensor> tensors{*tensor};
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    *work = backend_of(handle)->allreduce(tensors, options).release();
  });
}

// Work::wait: with gloo the sum is done when it returns; with NCCL the
// current CUDA stream waits for it (the host does not).
char* fwt_dist_work_wait(void* work) {
  return fwt::guarded([&] {
    static_cast<c10d::Work*>(work)->wait();
  });
}

void fwt_dist_work_free(void* work) {
  if (work != nullptr) {
    c10::intrusive_ptr<c10d::Work>::reclaim(static_cast<c10d::Work*>(work));
  }
}

}  // extern "C"
