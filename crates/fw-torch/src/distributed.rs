//! PyTorch's own distributed communication, c10d, through fw-torch's shim
//! (tch binds none of it): a process group and its all-reduce, created as
//! `torch.distributed.init_process_group` creates them, and DDP's gradient
//! engine ([`Reducer`]), which a data-parallel benchmark builds on. Mirrors
//! `fw_mlx::distributed`.
//!
//! - `gloo` (CPU tensors): c10d's ProcessGroupGloo from libtorch_cpu
//!   (`shim/distributed.cpp`); every build has it.
//! - `nccl` (CUDA tensors): c10d's ProcessGroupNCCL from libtorch_cuda
//!   (`shim/distributed_nccl.cpp`), in the CUDA shim, built where the
//!   set-up has NCCL's header (a CUDA set-up).
//!
//! Ranks meet through a FileStore: a file in a folder they share, which
//! none of them has used before (`init_process_group(init_method=
//! "file://...")`). No port is involved.

use std::ffi::{c_char, c_void, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tch::Tensor;

use crate::graph::cuda_shim_symbol;
use crate::shim::check_with as check;

type Status = *mut c_char;
type NewGroup = unsafe extern "C" fn(*const c_char, i32, i32, i64, *mut *mut c_void) -> Status;

extern "C" {
    fn fwt_dist_gloo_new(
        store_path: *const c_char,
        rank: i32,
        size: i32,
        timeout_ms: i64,
        out: *mut *mut c_void,
    ) -> Status;
    fn fwt_dist_free(group: *mut c_void);
    fn fwt_dist_rank(group: *mut c_void) -> i32;
    fn fwt_dist_size(group: *mut c_void) -> i32;
    fn fwt_dist_allreduce(
        group: *mut c_void,
        tensor: *mut c_void,
        work: *mut *mut c_void,
    ) -> Status;
    fn fwt_dist_work_wait(work: *mut c_void) -> Status;
    fn fwt_dist_work_free(work: *mut c_void);
    fn fwt_ddp_reducer_new(
        group: *mut c_void,
        params: *const *mut c_void,
        count: usize,
        bucket_bytes: i64,
        first_bucket_bytes: i64,
        out: *mut *mut c_void,
    ) -> Status;
    fn fwt_ddp_reducer_free(reducer: *mut c_void);
    fn fwt_ddp_prepare_forward(reducer: *mut c_void) -> Status;
    fn fwt_ddp_prepare_backward(reducer: *mut c_void) -> Status;
}

/// Why this build has no NCCL process group (empty: it has one).
const NCCL_NOTE: &str = env!("FWT_NCCL_NOTE");

/// The c10d backends the shim can create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Gloo,
    Nccl,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Gloo => "gloo",
            Backend::Nccl => "nccl",
        }
    }

    /// The shim function that creates this backend's group.
    fn constructor(self) -> Result<NewGroup> {
        match self {
            Backend::Gloo => Ok(fwt_dist_gloo_new),
            Backend::Nccl => {
                if !NCCL_NOTE.is_empty() {
                    bail!("PyTorch's NCCL process group is unavailable: {NCCL_NOTE}");
                }
                let address = cuda_shim_symbol(c"fwt_dist_nccl_new").map_err(|reason| {
                    anyhow!("PyTorch's NCCL process group is unavailable: {reason}")
                })?;
                // SAFETY: the shim's function of that signature.
                Ok(unsafe { std::mem::transmute::<*mut c_void, NewGroup>(address) })
            }
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> Result<Self> {
        match name {
            "gloo" => Ok(Backend::Gloo),
            "nccl" => Ok(Backend::Nccl),
            other => bail!("no c10d backend '{other}' here: expected gloo or nccl"),
        }
    }
}

/// The processes of one distributed run, as PyTorch sees them: a c10d
/// `ProcessGroup` over one backend.
pub struct Group {
    raw: *mut c_void,
    backend: Backend,
}

impl Group {
    /// Joins the `backend` group of `size` ranks as `rank`, meeting the
    /// others through a FileStore at `store` (a new file in a folder they
    /// share). Returns once every rank has joined; `timeout` bounds that
    /// wait and each collective. NCCL uses the current CUDA device.
    pub fn init(
        backend: Backend,
        store: &Path,
        rank: usize,
        size: usize,
        timeout: Duration,
    ) -> Result<Self> {
        if rank >= size {
            bail!("rank {rank} is not below the group's size {size}");
        }
        let new = backend.constructor()?;
        let path = CString::new(store.as_os_str().as_bytes())
            .with_context(|| format!("{} holds a NUL byte", store.display()))?;
        let rank_i32 = i32::try_from(rank).context("rank")?;
        let size_i32 = i32::try_from(size).context("group size")?;
        let millis = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        let mut raw = std::ptr::null_mut();
        // SAFETY: a NUL-terminated path; `raw` is written on success and
        // owned by the Group (freed by Drop).
        check(
            unsafe { new(path.as_ptr(), rank_i32, size_i32, millis, &mut raw) },
            || {
                format!(
                    "joining PyTorch's {} group as rank {rank} of {size} through {}",
                    backend.name(),
                    store.display()
                )
            },
        )?;
        Ok(Self { raw, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// This process's rank, from 0.
    pub fn rank(&self) -> usize {
        // SAFETY: a live group.
        unsafe { fwt_dist_rank(self.raw) as usize }
    }

    /// How many processes the group holds.
    pub fn size(&self) -> usize {
        // SAFETY: a live group.
        unsafe { fwt_dist_size(self.raw) as usize }
    }

    /// Starts summing `tensor` over every rank, in place (c10d's
    /// `allreduce`, ReduceOp.SUM, through the dispatcher as
    /// `dist.all_reduce` goes): the result is there once the returned work
    /// is waited for.
    pub fn allreduce(&self, tensor: &mut Tensor) -> Result<Work> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: a live group and a live at::Tensor* (c10d keeps its own
        // reference to the tensor until the work is done).
        check(
            unsafe { fwt_dist_allreduce(self.raw, tensor.as_mut_ptr() as *mut c_void, &mut raw) },
            || format!("c10d allreduce on rank {}", self.rank()),
        )?;
        Ok(Work { raw })
    }

    /// `x` summed over every rank, as a new tensor (`x` is left as it is):
    /// a copy, then [`Group::allreduce`] waited for. What MLX's `all_sum`
    /// returns.
    pub fn all_sum(&self, x: &Tensor) -> Result<Tensor> {
        let mut sum = x.copy();
        self.allreduce(&mut sum)?.wait()?;
        Ok(sum)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: the group's one reference, released once.
        unsafe { fwt_dist_free(self.raw) }
    }
}

/// A collective in flight (c10d's `Work`).
pub struct Work {
    raw: *mut c_void,
}

impl Work {
    /// c10d's `Work::wait`: with gloo the result is there when it returns;
    /// with NCCL the current CUDA stream waits for the collective, not the
    /// host (synchronise the device to wait on the host).
    pub fn wait(self) -> Result<()> {
        // SAFETY: live work; freed by Drop after.
        check(unsafe { fwt_dist_work_wait(self.raw) }, || {
            "waiting for a c10d collective".to_owned()
        })
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        // SAFETY: the work's one reference, released once.
        unsafe { fwt_dist_work_free(self.raw) }
    }
}

/// DDP's gradient engine, c10d's `Reducer`, as
/// `torch.nn.parallel.DistributedDataParallel` builds it: the parameters in
/// buckets (c10d's own assignment, the first bucket smaller), each
/// bucket's all-reduce started by autograd hooks as soon as its gradients
/// are ready, so communication overlaps the rest of backward; when
/// backward returns, every gradient is the mean over the group. Every
/// parameter must get a gradient in each step (DDP's default,
/// `find_unused_parameters=False`). The ranks must start from the same
/// parameters (DDP broadcasts rank 0's; here every rank loads one
/// checkpoint).
pub struct Reducer {
    raw: *mut c_void,
}

impl Reducer {
    /// DDP's defaults are 25 MiB buckets and a 1 MiB first bucket.
    pub fn new(
        group: &Group,
        params: &[Tensor],
        bucket_bytes: usize,
        first_bucket_bytes: usize,
    ) -> Result<Self> {
        if params.is_empty() {
            bail!("DDP's reducer needs at least one parameter");
        }
        let pointers: Vec<*mut c_void> = params.iter().map(|t| t.as_ptr() as *mut c_void).collect();
        let mut raw = std::ptr::null_mut();
        // SAFETY: a live group and live at::Tensor*s for the call (the
        // reducer keeps its own references); `raw` is owned by the Reducer.
        check(
            unsafe {
                fwt_ddp_reducer_new(
                    group.raw,
                    pointers.as_ptr(),
                    pointers.len(),
                    i64::try_from(bucket_bytes).unwrap_or(i64::MAX),
                    i64::try_from(first_bucket_bytes).unwrap_or(i64::MAX),
                    &mut raw,
                )
            },
            || format!("creating DDP's reducer over {} parameters", params.len()),
        )?;
        Ok(Self { raw })
    }

    /// What DDP's `forward` does before the model runs (buckets rebuilt in
    /// the order gradients came, after the first step).
    pub fn prepare_for_forward(&mut self) -> Result<()> {
        // SAFETY: a live reducer.
        check(unsafe { fwt_ddp_prepare_forward(self.raw) }, || {
            "DDP's prepare_for_forward".to_owned()
        })
    }

    /// What DDP's `forward` does after the model ran, before backward.
    pub fn prepare_for_backward(&mut self) -> Result<()> {
        // SAFETY: a live reducer.
        check(unsafe { fwt_ddp_prepare_backward(self.raw) }, || {
            "DDP's prepare_for_backward".to_owned()
        })
    }
}

impl Drop for Reducer {
    fn drop(&mut self) {
        // SAFETY: created by fwt_ddp_reducer_new, freed once; its autograd
        // hooks go with it.
        unsafe { fwt_ddp_reducer_free(self.raw) }
    }
}
