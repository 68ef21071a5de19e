// fw-torch's libtorch shim, CPU part: what PyTorch's optimizers use and tch
// does not bind (tch's generated bindings leave out every list op). Linked
// statically into fw-torch; it needs libtorch_cpu only, so it builds and runs
// on the CPU-only install too. Tensors arrive as tch passes them: at::Tensor*.
//
// Every function returns NULL on success, or a malloc'ed message that the
// caller frees with fwt_free_message.

#include <ATen/ATen.h>
#include <ATen/ops/_fused_adamw.h>

#include "common.h"

#include <cstdlib>
#include <string>
#include <vector>

namespace {

std::vector<at::Tensor> gather(at::Tensor* const* tensors, size_t count) {
  std::vector<at::Tensor> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    out.push_back(*tensors[i]);
  }
  return out;
}

}  // namespace

extern "C" {

void fwt_free_message(char* text) { std::free(text); }

// One AdamW step over every parameter at once, with PyTorch's fused kernel
// (torch.optim.AdamW(fused=True)): bias correction from `step`, decoupled
// weight decay, arithmetic in float32 whatever the parameters' dtype. The
// gradients are the parameters' own. `step` is one float32 scalar tensor
// on the parameters' device, shared by all (the caller increments it first,
// as PyTorch's _fused_adamw does). `lr_tensor` may be NULL (then `lr` is
// used); a device tensor keeps a CUDA graph valid as the rate changes.
char* fwt_fused_adamw(at::Tensor* const* params, at::Tensor* const* exp_avgs,
                      at::Tensor* const* exp_avg_sqs, size_t count,
                      const at::Tensor* step, const at::Tensor* lr_tensor,
                      double lr, double beta1, double beta2,
                      double weight_decay, double eps) {
  return fwt::guarded([&] {
    std::vector<at::Tensor> p = gather(params, count);
    std::vector<at::Tensor> m = gather(exp_avgs, count);
    std::vector<at::Tensor> v = gather(exp_avg_sqs, count);
    std::vector<at::Tensor> grads;
    grads.reserve(count);
    for (const at::Tensor& param : p) {
      TORCH_CHECK(param.grad().defined(),
                  "fused AdamW: a parameter of shape ", param.sizes(),
                  " has no gradient (was backward run?)");
      grads.push_back(param.grad());
    }
    std::vector<at::Tensor> steps(count, *step);
    if (lr_tensor != nullptr) {
      at::_fused_adamw_(p, grads, m, v, {}, steps, *lr_tensor, beta1, beta2,
                        weight_decay, eps, /*amsgrad=*/false,
                        /*maximize=*/false);
    } else {
      at::_fused_adamw_(p, grads, m, v, {}, steps, lr, beta1, beta2,
                        weight_decay, eps, /*amsgrad=*/false,
                        /*maximize=*/false);
    }
  });
}

// optimizer.zero_grad(set_to_none=True): the next backward allocates fresh
// gradients (inside a CUDA graph capture, from the graph's own pool).
char* fwt_clear_grad(at::Tensor* tensor) {
  return fwt::guarded([&] { tensor->mutable_grad() = at::Tensor(); });
}

}  // extern "C"
