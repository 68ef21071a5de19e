//! Criterion harness: one training step of the quick preset on the CPU,
//! both twins, float32, from the same checkpoint on the same batches.
//! `cargo xtask bench` is the suite's runner; this gives Criterion's
//! statistics and regression tracking for one crate.

use std::path::Path;
use std::time::Duration;

use bench_core::{Execution, Precision, Preset};
use bench_lm_train::workload::presets;
use bench_lm_train::{mlx, torch, weights, Batch, Dataset, LmConfig, LmTrainer};
use bench_twin::harness::{bench_synced, group, CpuTwin};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};

/// Batches uploaded before timing; the steps cycle through them.
const BATCHES: usize = 8;

/// One twin's training step, cycling through the uploaded batches.
fn bench_trainer<T: LmTrainer>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    runtime: &T::Runtime,
    config: &LmConfig,
    checkpoint: &Path,
    batches: &[Batch],
) {
    let mut trainer =
        T::new(runtime, config, checkpoint, 0, Execution::Best).expect("the twin's model");
    let batches: Vec<_> = batches
        .iter()
        .map(|b| trainer.upload(b).expect("a batch on the device"))
        .collect();
    let mut next = 0;
    bench_synced(group, format!("step/{name}"), runtime, || {
        trainer
            .train_step(&batches[next % BATCHES])
            .expect("training step");
        next += 1;
    });
}

fn lm_train(c: &mut Criterion) {
    let twin = CpuTwin::for_this_process(Precision::F32);
    let config = presets(Preset::Quick).sizes;
    let data = Dataset::shakespeare(&config, 0).expect("Shakespeare text (cargo xtask setup)");
    let batches: Vec<_> = (0..BATCHES).map(|i| data.train_batch(i)).collect();
    let checkpoint = weights::cached_checkpoint(&config.model, 0).expect("checkpoint");
    let mut group = group(c, "lm-train-cpu-f32", Duration::from_secs(20));
    match &twin {
        CpuTwin::Mlx(rt) => {
            bench_trainer::<mlx::Trainer>(&mut group, "mlx", rt, &config, &checkpoint, &batches)
        }
        CpuTwin::Torch(rt) => {
            bench_trainer::<torch::Trainer>(&mut group, "torch", rt, &config, &checkpoint, &batches)
        }
    }
    group.finish();
}

criterion_group!(benches, lm_train);
criterion_main!(benches);
