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
    fn fwt_mps_synchronize() -> *mut c_char;
    fn fwt_mps_memory(current: *mut u64, driver: *mut u64) -> *mut c_char;
    fn fwt_mps_macos_at_least(major: u32, minor: u32, answer: *mut i32) -> *mut c_char;
}

/// Turns a shim's returned message (NULL: success) into a Result.
fn check(message: *mut c_char, what: &str) -> Result<()> {
    check_with(message, || what.to_owned())
}

/// [`check`], with the context built only on failure (every shim's calls:
/// `distributed` too).
pub(crate) fn check_with(message: *mut c_char, what: impl FnOnce() -> String) -> Result<()> {
    if message.is_null() {
        return Ok(());
    }
    // SAFETY: the shim returns a NUL-terminated malloc'ed string.
    let text = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: allocated by the shim, freed once here.
    unsafe { fwt_free_message(message) };
    bail!("{}: {text}", what())
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

/// Waits for the MPS device's queued work (`torch.mps.synchronize`).
pub(crate) fn mps_synchronize() -> Result<()> {
    // SAFETY: no arguments; the shim catches every C++ exception.
    check(unsafe { fwt_mps_synchronize() }, "synchronising MPS")
}

/// The MPS allocator's memory: (allocated to tensors, held from Metal).
pub(crate) fn mps_memory() -> Result<(u64, u64)> {
    let (mut current, mut driver) = (0u64, 0u64);
    // SAFETY: both pointers are to live locals written by the call.
    check(
        unsafe { fwt_mps_memory(&mut current, &mut driver) },
        "reading MPS memory",
    )?;
    Ok((current, driver))
}

/// Whether this macOS is at least `major.minor`, as MPS checks it.
pub(crate) fn mps_macos_at_least(major: u32, minor: u32) -> Result<bool> {
    let mut answer = 0i32;
    // SAFETY: the pointer is to a live local written by the call.
    check(
        unsafe { fwt_mps_macos_at_least(major, minor, &mut answer) },
        "reading the macOS version",
    )?;
    Ok(answer == 1)
}

/// Where libtorch has MPS (macOS) these calls succeed; elsewhere:
#[cfg(all(test, not(target_os = "macos")))]
mod tests {
    use super::*;

    /// The MPS calls link and, in a libtorch without MPS, come back as
    /// errors that say so instead of aborting.
    #[test]
    fn mps_calls_are_errors_where_libtorch_has_no_mps() {
        let error = mps_synchronize().unwrap_err().to_string();
        assert!(error.starts_with("synchronising MPS: "), "{error}");
        assert!(error.contains("MPS"), "{error}");
        assert!(mps_memory().is_err());
    }
}
