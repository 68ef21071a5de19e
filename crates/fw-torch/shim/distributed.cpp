// fw-torch's libtorch shim, distributed part (CPU): PyTorch's own c10d
// process groups, as torch.distributed creates them, and DDP's Reducer,
// for what tch does not bind. ProcessGroupGloo, the FileStore, the
// ProcessGroup and the Reducer are libtorch_cpu's; the gloo headers that
// the torch wheel leaves out are declared in gloo-declarations/ (see its
// README). The NCCL backend needs libtorch_cuda and lives in
// distributed_nccl.cpp.
//
// A process group crosses into Rust as a c10d::ProcessGroup* holding one
// reference (freed with fwt_dist_free), a pending collective as a
// c10d::Work* likewise (fwt_dist_work_free), a Reducer as a Reducer*
// (fwt_ddp_reducer_free). Functions returning char* return NULL on success
// or a malloc'ed message (fwt_free_message).

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>

#include "common.h"
#include "distributed.h"

#include <chrono>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

namespace {

c10d::ProcessGroup* group_of(void* handle) {
  return static_cast<c10d::ProcessGroup*>(handle);
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
    auto backend = c10::make_intrusive<c10d::ProcessGroupGloo>(
        store, rank, size, options);
    *out = fwt::process_group(store, backend, c10::DeviceType::CPU,
                              c10d::ProcessGroup::BackendType::GLOO)
               .release();
  });
}

void fwt_dist_free(void* handle) {
  if (handle != nullptr) {
    c10::intrusive_ptr<c10d::ProcessGroup>::reclaim(group_of(handle));
  }
}

int fwt_dist_rank(void* handle) { return group_of(handle)->getRank(); }

int fwt_dist_size(void* handle) { return group_of(handle)->getSize(); }

// Starts summing `tensor` over the group, in place: ProcessGroup::allreduce
// with ReduceOp::SUM, through the dispatcher's c10d::allreduce_ as
// torch.distributed.all_reduce goes; `*work` is the pending collective.
char* fwt_dist_allreduce(void* handle, at::Tensor* tensor, void** work) {
  return fwt::guarded([&] {
    std::vector<at::Tensor> tensors{*tensor};
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    *work = group_of(handle)->allreduce(tensors, options).release();
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

// DDP's engine (torch.nn.parallel.DistributedDataParallel builds one):
// `params` in buckets of at most `bucket_bytes` (the first of
// `first_bucket_bytes`), assigned by c10d's own
// compute_bucket_assignment_by_size; each bucket's all-reduce starts from
// autograd hooks as soon as its gradients are ready, and backward ends
// with every gradient averaged over the group. No unused parameters, no
// gradients as bucket views: DDP's defaults.
char* fwt_ddp_reducer_new(void* handle, at::Tensor* const* params,
                          size_t count, int64_t bucket_bytes,
                          int64_t first_bucket_bytes, void** out) {
  return fwt::guarded([&] {
    std::vector<at::Tensor> tensors;
    tensors.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      tensors.push_back(*params[i]);
    }
    const std::vector<bool> sparse(count, false);
    auto [buckets, limits] = c10d::compute_bucket_assignment_by_size(
        tensors,
        {static_cast<size_t>(first_bucket_bytes),
         static_cast<size_t>(bucket_bytes)},
        sparse);
    std::vector<int64_t> caps(limits.begin(), limits.end());
    auto group = c10::intrusive_ptr<c10d::ProcessGroup>::
        unsafe_reclaim_from_nonowning(group_of(handle));
    *out = new c10d::Reducer(std::move(tensors), std::move(buckets), group,
                             sparse, bucket_bytes,
                             /*find_unused_parameters=*/false,
                             /*gradient_as_bucket_view=*/false,
                             /*param_names=*/{}, first_bucket_bytes,
                             /*skip_all_reduce_unused_params=*/false,
                             /*use_python_reducer=*/false, std::move(caps));
  });
}

void fwt_ddp_reducer_free(void* reducer) {
  delete static_cast<c10d::Reducer*>(reducer);
}

// What DDP's forward does first: after the first step, buckets are rebuilt
// in the order gradients became ready; then the reducer is told a forward
// pass begins.
char* fwt_ddp_prepare_forward(void* reducer) {
  return fwt::guarded([&] {
    auto* r = static_cast<c10d::Reducer*>(reducer);
    r->rebuild_buckets();
    r->prepare_for_forward();
  });
}

// What DDP's forward does last, before the caller's backward: with every
// parameter used, prepare_for_backward of no outputs.
char* fwt_ddp_prepare_backward(void* reducer) {
  return fwt::guarded([&] {
    static_cast<c10d::Reducer*>(reducer)->prepare_for_backward({});
  });
}

}  // extern "C"
