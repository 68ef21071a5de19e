//! Criterion harness: one training step of the quick preset (MiniLM,
//! sequences of 128, batch 16) on the CPU, both twins, float32.
//! `cargo xtask bench` is the suite's runner; this gives Criterion's
//! statistics and regression tracking for one crate.

use std::time::Duration;

use bench_bert::workload::presets;
use bench_bert::{mlx, permutation, torch, FineTune, LabelledBatch, Prepared};
use bench_core::{Execution, Precision, Preset, Runtime};
use bench_twin::harness::{bench_synced, group, CpuTwin};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};

/// One twin's training step, cycling through `batches`.
fn bench_trainer(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    runtime: &dyn Runtime,
    mut trainer: impl FineTune,
    batches: &[LabelledBatch],
) {
    let mut next = 0;
    bench_synced(group, format!("train-step/{name}"), runtime, || {
        trainer
            .step(&batches[next % batches.len()])
            .expect("training step");
        next += 1;
    });
}

fn bert(c: &mut Criterion) {
    let twin = CpuTwin::for_this_process(Precision::F32);
    let mut fine_tune = presets(Preset::Quick).sizes;
    // Enough emails for the steps Criterion runs; the test set is unused.
    fine_tune.train_emails = Some(256);
    fine_tune.test_emails = Some(fine_tune.batch_size);
    let prepared = Prepared::load(&fine_tune, 0).expect("model and data (run `cargo xtask setup`)");
    let order = permutation(prepared.train.len(), 0);
    let batches = prepared.train.batches(&order, fine_tune.batch_size);
    let mut group = group(c, "bert-cpu-f32", Duration::from_secs(35));
    let optimizer = &fine_tune.optimizer;
    match &twin {
        CpuTwin::Mlx(rt) => {
            let trainer = mlx::Trainer::new(
                rt,
                &prepared.bert,
                &prepared.weights,
                optimizer,
                Execution::Best,
            )
            .expect("MLX model");
            bench_trainer(&mut group, "mlx", rt, trainer, &batches);
        }
        CpuTwin::Torch(rt) => {
            let trainer = torch::Trainer::new(
                rt,
                &prepared.bert,
                &prepared.weights,
                optimizer,
                Execution::Best,
            )
            .expect("PyTorch model");
            bench_trainer(&mut group, "torch", rt, trainer, &batches);
        }
    }
    group.finish();
}

criterion_group!(benches, bert);
criterion_main!(benches);
