//! MLX twin: `mlx.core.distributed` through fw-mlx's group (mlx-c), and
//! lm-train's MLX trainer with `mlx.nn.average_gradients` in its step.

use std::path::Path;
use std::rc::Rc;

use anyhow::{ensure, Result};
use bench_lm_train::{mlx::Trainer, LmConfig, LmTrainer};
use fw_mlx::distributed::Group;
use fw_mlx::MlxRuntime;
use mlx_rs::{Array, Dtype};

use crate::dp::DpTwin;
use crate::rank::RankSpec;
use crate::DistributedTwin;

pub struct Twin;

impl DistributedTwin for Twin {
    type Runtime = MlxRuntime;
    /// Shared with the trainer's compiled step in `dp-train`.
    type Group = Rc<Group>;
    type Buffer = Array;

    /// MLX reads the rank and its peers from the environment the launcher
    /// set (`MLX_RANK`, `MLX_HOSTFILE` or `NCCL_HOST_IP`/`NCCL_PORT`).
    /// One rank is MLX's one-process group, as `mx.distributed.init()`
    /// gives it without a launcher.
    fn join(_runtime: &MlxRuntime, spec: &RankSpec, rank: usize) -> Result<Rc<Group>> {
        let group = if spec.sizes.world == 1 {
            Group::single()?
        } else {
            Group::init(&spec.backend)?
        };
        let world = spec.sizes.world;
        ensure!(
            group.rank() == rank && group.size() == world,
            "MLX's {} group says rank {} of {}, expected {rank} of {world}",
            spec.backend,
            group.rank(),
            group.size()
        );
        Ok(Rc::new(group))
    }

    fn filled(runtime: &MlxRuntime, elements: usize, value: f32) -> Result<Array> {
        let shape = [i32::try_from(elements)?];
        let buffer =
            mlx_rs::ops::full::<f32>(&shape, Array::from_f32(value))?.as_dtype(runtime.dtype())?;
        buffer.eval()?;
        Ok(buffer)
    }

    /// A chain of `all_sum`s, evaluated once: MLX builds the graph lazily
    /// and runs it on `eval`.
    fn allreduce(group: &Rc<Group>, buffer: &mut Array, ops: usize) -> Result<()> {
        for _ in 0..ops {
            *buffer = group.all_sum(buffer)?;
        }
        buffer.eval()?;
        Ok(())
    }

    fn max_abs_diff(buffer: &Array, expected: f32) -> Result<f64> {
        let diff = buffer
            .as_dtype(Dtype::Float32)?
            .subtract(Array::from_f32(expected))?
            .abs()?
            .max(None)?;
        Ok(f64::from(diff.item_exact::<f32>()))
    }

    fn gather(
        group: &Rc<Group>,
        _runtime: &MlxRuntime,
        rank: usize,
        world: usize,
        seconds: f64,
    ) -> Result<Vec<f64>> {
        let mut mine = vec![0.0f32; world];
        mine[rank] = seconds as f32;
        let all = group.all_sum(&Array::from_slice(&mine, &[i32::try_from(world)?]))?;
        all.eval()?;
        Ok(all
            .as_slice::<f32>()
            .iter()
            .map(|&t| f64::from(t))
            .collect())
    }

    fn execution(runtime: &MlxRuntime, spec: &RankSpec) -> String {
        runtime.execution_label(spec.execution, false).to_owned()
    }
}

impl DpTwin for Twin {
    type Trainer = Trainer;
    const DEFAULT_BUCKET_BYTES: usize = 32 << 20;
    const AVERAGING: &'static str =
        "mlx.nn.average_gradients inside the compiled step (gradients concatenated in groups, all_sum, divided by N)";

    fn trainer(
        runtime: &MlxRuntime,
        spec: &RankSpec,
        config: &LmConfig,
        checkpoint: &Path,
        group: &Rc<Group>,
        bucket_bytes: usize,
    ) -> Result<Trainer> {
        let seed = spec.dp.as_ref().map_or(0, |dp| dp.seed);
        let mut trainer = Trainer::new(runtime, config, checkpoint, seed, spec.execution)?;
        trainer.average_gradients(Rc::clone(group), bucket_bytes);
        Ok(trainer)
    }
}
