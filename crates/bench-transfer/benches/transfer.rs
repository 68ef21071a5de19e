//! Criterion harness: the quick preset's switch loop and matmul ceiling on
//! the CPU, both twins, float32. `cargo xtask bench` is the suite's runner;
//! this gives Criterion's statistics and regression tracking for one crate.

use std::time::Duration;

use bench_core::host::HostTensor;
use bench_core::{DeviceKind, Precision, Preset};
use bench_transfer::workload::presets;
use bench_transfer::{mlx, torch, CeilingConfig, Kernel, Switching, TransferTwin};
use bench_twin::harness::{bench_synced, group, CpuTwin};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};

/// One twin's switch iteration and matmul ceiling.
fn bench_twin<T: TransferTwin>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    runtime: &T::Runtime,
    inputs: &[HostTensor; 3],
    ceilings: &CeilingConfig,
) {
    let mut switch = T::switch(runtime, inputs).expect("inputs on the device");
    bench_synced(group, format!("switch-iteration/{name}"), runtime, || {
        switch.iterate().expect("iteration")
    });
    let matmul = T::matmul(runtime, ceilings.matmul_size, 0).expect("matmul inputs");
    bench_synced(group, format!("matmul/{name}"), runtime, || {
        matmul.run().expect("matmul")
    });
}

fn transfer(c: &mut Criterion) {
    let twin = CpuTwin::for_this_process(Precision::F32);
    let switch = presets(Preset::Quick).sizes;
    let ceilings = CeilingConfig::for_cell(Preset::Quick, DeviceKind::Cpu);
    let inputs = switch.inputs(0);
    let mut group = group(c, "transfer-cpu-f32", Duration::from_secs(5));
    match &twin {
        CpuTwin::Mlx(rt) => bench_twin::<mlx::Twin>(&mut group, "mlx", rt, &inputs, &ceilings),
        CpuTwin::Torch(rt) => {
            bench_twin::<torch::Twin>(&mut group, "torch", rt, &inputs, &ceilings)
        }
    }
    group.finish();
}

criterion_group!(benches, transfer);
criterion_main!(benches);
