//! PyTorch twin: `torch.distributed` (c10d) through fw-torch's group, and
//! lm-train's PyTorch trainer under DDP's Reducer.

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Result};
use bench_lm_train::{torch::Trainer, LmConfig, LmTrainer};
use fw_torch::distributed::{Backend, Group};
use fw_torch::TorchRuntime;
use tch::{Kind, Tensor};

use crate::dp::DpTwin;
use crate::rank::RankSpec;
use crate::DistributedTwin;

/// How long joining, and each collective, may wait for the other ranks.
const TIMEOUT: Duration = Duration::from_secs(300);

pub struct Twin;

impl DistributedTwin for Twin {
    type Runtime = TorchRuntime;
    type Group = Group;
    type Buffer = Tensor;

    /// c10d meets its peers through the FileStore the launcher named.
    fn join(_runtime: &TorchRuntime, spec: &RankSpec, rank: usize) -> Result<Group> {
        let backend: Backend = spec.backend.parse()?;
        let world = spec.sizes.world;
        let group = Group::init(backend, &spec.store, rank, world, TIMEOUT)?;
        ensure!(
            group.rank() == rank && group.size() == world,
            "PyTorch's {} group says rank {} of {}, expected {rank} of {world}",
            spec.backend,
            group.rank(),
            group.size()
        );
        Ok(group)
    }

    fn filled(runtime: &TorchRuntime, elements: usize, value: f32) -> Result<Tensor> {
        let shape = [i64::try_from(elements)?];
        Ok(Tensor::f_full(
            shape,
            f64::from(value),
            (runtime.kind(), runtime.tch_device()),
        )?)
    }

    /// In place, each waited for, as `dist.all_reduce(x)` does (with NCCL
    /// the wait holds the stream, not the host).
    fn allreduce(group: &Group, buffer: &mut Tensor, ops: usize) -> Result<()> {
        for _ in 0..ops {
            group.allreduce(buffer)?.wait()?;
        }
        Ok(())
    }

    fn max_abs_diff(buffer: &Tensor, expected: f32) -> Result<f64> {
        let diff = (buffer.to_kind(Kind::Float) - f64::from(expected))
            .abs()
            .max();
        Ok(diff.double_value(&[]))
    }

    fn gather(
        group: &Group,
        runtime: &TorchRuntime,
        rank: usize,
        world: usize,
        seconds: f64,
    ) -> Result<Vec<f64>> {
        let mut mine = vec![0.0f32; world];
        mine[rank] = seconds as f32;
        let mut all = Tensor::from_slice(&mine).to_device(runtime.tch_device());
        group.allreduce(&mut all)?.wait()?;
        let all = Vec::<f32>::try_from(&all.to_device(tch::Device::Cpu))?;
        Ok(all.into_iter().map(f64::from).collect())
    }

    fn execution(_runtime: &TorchRuntime, _spec: &RankSpec) -> String {
        "eager".to_owned()
    }
}

impl DpTwin for Twin {
    type Trainer = Trainer;
    const DEFAULT_BUCKET_BYTES: usize = 25 << 20;
    const AVERAGING: &'static str =
        "DDP's Reducer (buckets all-reduced from autograd hooks during backward, divided by N)";

    fn trainer(
        runtime: &TorchRuntime,
        spec: &RankSpec,
        config: &LmConfig,
        checkpoint: &Path,
        group: &Group,
        bucket_bytes: usize,
    ) -> Result<Trainer> {
        let seed = spec.dp.as_ref().map_or(0, |dp| dp.seed);
        let mut trainer = Trainer::new(runtime, config, checkpoint, seed, spec.execution)?;
        trainer.data_parallel(group, bucket_bytes)?;
        Ok(trainer)
    }
}
