//! The CPU half of fw-torch's libtorch shim (`shim/optim.cpp`): the list
//! ops that PyTorch's fast optimizers use and tch does not bind.

use std::ffi::{c_char, c_void, CStr};

use anyhow::{bail, Result};
use tch::Tensor;

extern "C" {
    fn fwt_free_message(text: *mut c_char);
    #[allow(clippy::too_many_arguments)]
    fn fwt_fused_adamw(
        params: *const *mut c_void,
        exp_avgs: *const *mut c_void,
        exp_avg_sqs: *const *mut c_void,
        count: usize,
        step: *const c_void,
        lr_tensor: *const c_void,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
    ) -> *mut c_char;
    fn fwt_clear_grad(tensor: *mut c_void) -> *mut c_char;
}

/// Turns a shim's returned message (NULL: success) into a Result.
fn check(message: *mut c_char, what: &str) -> Result<()> {
    if message.is_null() {
        return Ok(());
    }
    // SAFETY: the shim returns a NUL-terminated malloc'ed string.
    let text = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: allocated by the shim, freed once here.
    unsafe { fwt_free_message(message) };
    bail!("{what}: {text}")
}

fn pointers(tensors: &[Tensor]) -> Vec<*mut c_void> {
    tensors.iter().map(|t| t.as_ptr() as *mut c_void).collect()
}

pub use bench_core::AdamWHyper;

/// `torch._fused_adamw_` over `params` (their own gradients) and their
/// moments; `step` is incremented by the caller. `lr_tensor`, where given,
/// is read on the device (a CUDA graph stays valid as it changes).
pub(crate) fn fused_adamw(
    params: &[Tensor],
    moments: (&[Tensor], &[Tensor]),
    step: &Tensor,
    lr: (Option<&Tensor>, f64),
    hyper: AdamWHyper,
) -> Result<()> {
    let (exp_avgs, exp_avg_sqs) = moments;
    assert!(params.len() == exp_avgs.len() && params.len() == exp_avg_sqs.len());
    let (params, exp_avgs, exp_avg_sqs) =
        (pointers(params), pointers(exp_avgs), pointers(exp_avg_sqs));
    let lr_tensor =
        lr.0.map_or(std::ptr::null(), |t| t.as_ptr() as *const c_void);
    // SAFETY: every pointer is a live at::Tensor* owned by a tch Tensor
    // borrowed for the call; the lists have `count` entries.
    let message = unsafe {
        fwt_fused_adamw(
            params.as_ptr(),
            exp_avgs.as_ptr(),
            exp_avg_sqs.as_ptr(),
            params.len(),
            step.as_ptr() as *const c_void,
            lr_tensor,
            lr.1,
            hyper.beta1,
            hyper.beta2,
            hyper.weight_decay,
            hyper.eps,
        )
    };
    check(message, "fused AdamW")
}

/// `param.grad = None`, as `zero_grad(set_to_none=True)`.
pub(crate) fn clear_grad(param: &Tensor) -> Result<()> {
    // SAFETY: a live at::Tensor*; only its autograd metadata changes.
    let message = unsafe { fwt_clear_grad(param.as_ptr() as *mut c_void) };
    check(message, "clearing a gradient")
}
