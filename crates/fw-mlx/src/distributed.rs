//! MLX's own distributed communication, through mlx-c's `distributed.h`
//! (mlx-rs binds none of it: oxiglade/mlx-rs#104): a group of processes
//! and its all-reduce, which a data-parallel benchmark builds on. Ranks
//! join with MLX's backends as MLX's users start them
//! without `mlx.launch`, by environment: `MLX_RANK` and `MLX_HOSTFILE` for
//! the ring backend (TCP; the CPU wheel has it), NCCL's variables for CUDA.
//! [`Group::average_gradients`] is `mlx.nn.average_gradients`.

use std::ffi::CString;

use anyhow::{bail, Result};
use mlx_rs::{Array, Device};

/// The processes of one distributed run, as MLX sees them.
pub struct Group {
    raw: mlx_sys::mlx_distributed_group,
    /// Where the collectives run: the GPU stream for NCCL, the CPU stream
    /// for the ring, as MLX's own default (the backend's communication
    /// stream) has it.
    on_gpu: bool,
}

impl Group {
    /// Joins the group of `backend` ("ring", "nccl", "mpi", or "any"),
    /// strictly: a backend that is missing or not set up is an error, not
    /// a group of one.
    pub fn init(backend: &str) -> Result<Self> {
        // mlx-rs's error handler records MLX's errors instead of mlx-c's
        // default, which exits: any mlx-rs call that can fail installs it.
        let _ = Device::cpu().get_index();
        let name = CString::new(backend)?;
        // SAFETY: a plain query with a NUL-terminated name.
        if !unsafe { mlx_sys::mlx_distributed_is_available(name.as_ptr()) } {
            bail!("MLX has no {backend} distributed backend in this build");
        }
        // SAFETY: `raw` is written by the call and freed by Drop.
        let mut raw = unsafe { mlx_sys::mlx_distributed_group_new() };
        let status = unsafe { mlx_sys::mlx_distributed_init(&mut raw, true, name.as_ptr()) };
        if status != 0 || raw.ctx.is_null() {
            bail!(
                "MLX's {backend} backend did not start: set MLX_RANK and MLX_HOSTFILE \
                 (ring) or NCCL_HOST_IP, NCCL_PORT, MLX_RANK and MLX_WORLD_SIZE (nccl)"
            );
        }
        Ok(Self {
            raw,
            on_gpu: backend == "nccl",
        })
    }

    /// This process alone, as `mx.distributed.init()` gives a process
    /// started without any backend's settings: size 1, every collective a
    /// no-op (MLX's own one-process path).
    pub fn single() -> Result<Self> {
        let _ = Device::cpu().get_index();
        let name = CString::new("any")?;
        // SAFETY: as in `init`; not strict, so no backend is required.
        let mut raw = unsafe { mlx_sys::mlx_distributed_group_new() };
        let status = unsafe { mlx_sys::mlx_distributed_init(&mut raw, false, name.as_ptr()) };
        if status != 0 || raw.ctx.is_null() {
            bail!("MLX gave no one-process group");
        }
        let group = Self { raw, on_gpu: false };
        if group.size() != 1 {
            bail!(
                "MLX joined a group of {} (a backend's settings are in the environment)",
                group.size()
            );
        }
        Ok(group)
    }

    /// This process's rank, from 0.
    pub fn rank(&self) -> usize {
        // SAFETY: a live group.
        unsafe { mlx_sys::mlx_distributed_group_rank(self.raw) as usize }
    }

    /// How many processes the group holds.
    pub fn size(&self) -> usize {
        // SAFETY: a live group.
        unsafe { mlx_sys::mlx_distributed_group_size(self.raw) as usize }
    }

    /// `x` summed over every rank (MLX's `all_sum`), queued on the
    /// backend's stream (the GPU's for NCCL, else the CPU's); evaluating
    /// the result runs the exchange.
    pub fn all_sum(&self, x: &Array) -> Result<Array> {
        // SAFETY: `result` is written by the call and owned by the Array
        // returned; the stream is freed after the call, which keeps its
        // own reference.
        unsafe {
            let stream = if self.on_gpu {
                mlx_sys::mlx_default_gpu_stream_new()
            } else {
                mlx_sys::mlx_default_cpu_stream_new()
            };
            let mut result = mlx_sys::mlx_array_new();
            let status =
                mlx_sys::mlx_distributed_all_sum(&mut result, x.as_ptr(), self.raw, stream);
            mlx_sys::mlx_stream_free(stream);
            if status != 0 {
                mlx_sys::mlx_array_free(result);
                bail!("MLX's all_sum failed on rank {}", self.rank());
            }
            Ok(Array::from_ptr(result))
        }
    }
}

impl Group {
    /// `mlx.nn.average_gradients`: the mean of `gradients` over the group,
    /// as MLX's data-parallel training takes it. Arrays of one dtype are
    /// flattened and concatenated into groups of at least
    /// `all_reduce_bytes` (the last smaller; MLX's default is 32 MiB), one
    /// `all_sum` per group, divided by the group's size in the gradients'
    /// dtype, and split back into their shapes; mixed dtypes or
    /// `all_reduce_bytes` 0 give one `all_sum` per array. Lazy, like the
    /// rest of MLX: it can sit inside a compiled step.
    pub fn average_gradients(
        &self,
        gradients: &[Array],
        all_reduce_bytes: usize,
    ) -> Result<Vec<Array>> {
        let size = self.size();
        if size == 1 || gradients.is_empty() {
            return Ok(gradients.to_vec());
        }
        let dtype = gradients[0].dtype();
        let average = |x: &Array| -> Result<Array> {
            let divisor = Array::from_f32(size as f32).as_dtype(x.dtype())?;
            Ok(self.all_sum(x)?.divide(&divisor)?)
        };
        if all_reduce_bytes == 0 || gradients.iter().any(|g| g.dtype() != dtype) {
            return gradients.iter().map(average).collect();
        }
        let item = gradients[0].item_size();
        let mut averaged = Vec::with_capacity(gradients.len());
        for group in byte_groups(gradients.iter().map(|g| g.size() * item), all_reduce_bytes) {
            let members = &gradients[group];
            let flat = members
                .iter()
                .map(|g| g.reshape(&[-1]))
                .collect::<Result<Vec<_>, _>>()?;
            let mut ends = Vec::with_capacity(members.len());
            let mut end = 0;
            for g in &members[..members.len() - 1] {
                end += i32::try_from(g.size())?;
                ends.push(end);
            }
            let sum = average(&mlx_rs::ops::concatenate(&flat, 0)?)?;
            for (part, g) in sum.split_at_indices(&ends, 0)?.iter().zip(members) {
                averaged.push(part.reshape(g.shape())?);
            }
        }
        Ok(averaged)
    }
}

/// `mlx.nn.average_gradients`' grouping: consecutive arrays until their
/// bytes reach `limit`, then a new group; the last holds what is left.
fn byte_groups(
    bytes: impl IntoIterator<Item = usize>,
    limit: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let (mut start, mut filled, mut index) = (0, 0, 0);
    for size in bytes {
        index += 1;
        filled += size;
        if filled >= limit {
            groups.push(start..index);
            (start, filled) = (index, 0);
        }
    }
    if start < index {
        groups.push(start..index);
    }
    groups
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: the group was created by `init` and is freed once.
        unsafe {
            mlx_sys::mlx_distributed_group_free(self.raw);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::byte_groups;

    #[test]
    fn gradients_group_until_the_limit_is_reached_as_mlx_groups_them() {
        assert_eq!(byte_groups([10, 10, 10, 10, 10], 20), [0..2, 2..4, 4..5]);
        assert_eq!(byte_groups([30, 5, 5], 20), [0..1, 1..3]);
        assert_eq!(byte_groups([5], 20), vec![0..1usize]);
        assert!(byte_groups([], 20).is_empty());
    }
}
