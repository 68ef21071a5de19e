//! Criterion harness: the quick preset's switch loop and matmul ceiling on
//! the CPU, both twins, float32. `cargo xtask bench` is the suite's runner;
//! this gives Criterion's statistics and regression tracking for one crate.

use std::time::Duration;

use bench_core::{DeviceKind, Precision, Preset};
use bench_transfer::{mlx, torch, CeilingConfig, SwitchConfig};
use bench_twin::harness::{bench_synced, group, CpuTwin};
use criterion::{criterion_group, criterion_main, Criterion};

fn transfer(c: &mut Criterion) {
    let twin = CpuTwin::for_this_process(Precision::F32);
    let switch = SwitchConfig::for_preset(Preset::Quick);
    let ceilings = CeilingConfig::for_cell(Preset::Quick, DeviceKind::Cpu);
    let inputs = switch.inputs(0);
    let mut group = group(c, "transfer-cpu-f32", Duration::from_secs(5));
    match &twin {
        CpuTwin::Mlx(rt) => {
            let mut switch = mlx::Switch::new(rt, &inputs).expect("MLX inputs");
            bench_synced(&mut group, "switch-iteration/mlx", rt, || {
                switch.iterate().expect("MLX iteration")
            });
            let matmul = mlx::Matmul::new(rt, ceilings.matmul_size, 0).expect("MLX matmul");
            bench_synced(&mut group, "matmul/mlx", rt, || {
                matmul.run().expect("MLX matmul")
            });
        }
        CpuTwin::Torch(rt) => {
            let mut switch = torch::Switch::new(rt, &inputs).expect("PyTorch inputs");
            bench_synced(&mut group, "switch-iteration/torch", rt, || {
                switch.iterate().expect("PyTorch iteration")
            });
            let matmul = torch::Matmul::new(rt, ceilings.matmul_size, 0).expect("PyTorch matmul");
            bench_synced(&mut group, "matmul/torch", rt, || {
                matmul.run().expect("PyTorch matmul")
            });
        }
    }
    group.finish();
}

criterion_group!(benches, transfer);
criterion_main!(benches);
