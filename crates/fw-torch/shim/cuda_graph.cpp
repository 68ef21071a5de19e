// fw-torch's libtorch shim, CUDA part: CUDA graph capture and replay
// (at::cuda::CUDAGraph, what torch.cuda.graph and torch.compile's
// "reduce-overhead" mode use). Built as its own shared object with its
// libtorch_cuda / c10_cuda / cudart symbols left unresolved: fw-torch opens
// it only after libtorch_cuda.so has been loaded RTLD_GLOBAL, so the
// CPU-only install never needs those libraries. See src/graph.rs.
//
// Functions returning char* return NULL on success, or a malloc'ed message
// that the caller frees with fwt_graph_free_message.

#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "common.h"

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

namespace {

struct Graph {
  at::cuda::CUDAGraph graph;
  // The side stream the capture runs on (a legacy default stream cannot be
  // captured), current from begin to end.
  std::optional<c10::cuda::CUDAStreamGuard> stream;
};

}  // namespace

extern "C" {

void fwt_graph_free_message(char* text) { std::free(text); }

char* fwt_graph_new(void** out) {
  return fwt::guarded([&] { *out = new Graph(); });
}

void fwt_graph_delete(void* graph) { delete static_cast<Graph*>(graph); }

// Waits for the device, makes a pooled side stream current and starts
// capturing on it into a private memory pool: every op queued until
// fwt_graph_end is recorded, not run.
char* fwt_graph_begin(void* handle) {
  return fwt::guarded([&] {
    auto* g = static_cast<Graph*>(handle);
    c10::cuda::device_synchronize();
    g->stream.emplace(c10::cuda::getStreamFromPool());
    try {
      g->graph.capture_begin();
    } catch (...) {
      g->stream.reset();
      throw;
    }
  });
}

// Ends the capture, instantiates the graph and restores the stream.
char* fwt_graph_end(void* handle) {
  auto* g = static_cast<Graph*>(handle);
  char* failure = fwt::guarded([&] { g->graph.capture_end(); });
  g->stream.reset();
  if (failure == nullptr) {
    failure = fwt::guarded([] { c10::cuda::device_synchronize(); });
  }
  return failure;
}

// Launches the recorded work on the current stream.
char* fwt_graph_replay(void* handle) {
  return fwt::guarded([&] { static_cast<Graph*>(handle)->graph.replay(); });
}

}  // extern "C"
