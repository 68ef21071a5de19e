// fw-torch's libtorch shim, distributed part (CUDA): PyTorch's NCCL
// process group (what torch.distributed.init_process_group("nccl")
// creates). Compiled into the CUDA shim library (see cuda_graph.cpp and
// src/graph.rs), which opens only after libtorch_cuda.so, and only where
// the build found NCCL's header (the nvidia-nccl-cu13 wheel of a CUDA
// set-up): build.rs then defines USE_C10D_NCCL, as PyTorch's own build
// does. Elsewhere this file compiles to nothing and Rust reports why.
//
// The group is handed back as a c10d::ProcessGroup* holding one reference,
// as distributed.cpp hands back gloo's, and its functions (allreduce,
// wait, DDP's Reducer, free) serve both.

#ifdef USE_C10D_NCCL

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include "common.h"
#include "distributed.h"

#include <chrono>

extern "C" {

// Joins the NCCL process group of `size` ranks as `rank` through a
// FileStore at `store_path`; each rank uses its current CUDA device.
char* fwt_dist_nccl_new(const char* store_path, int rank, int size,
                        int64_t timeout_ms, void** out) {
  return fwt::guarded([&] {
    const std::chrono::milliseconds timeout(timeout_ms);
    auto store = c10::make_intrusive<c10d::FileStore>(store_path, size);
    store->setTimeout(timeout);
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    auto backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(
        store, rank, size, options);
    *out = fwt::process_group(store, backend, c10::DeviceType::CUDA,
                              c10d::ProcessGroup::BackendType::NCCL)
               .release();
  });
}

}  // extern "C"

#endif  // USE_C10D_NCCL
