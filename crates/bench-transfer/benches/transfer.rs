//! Criterion harness: the quick preset's switch loop and matmul ceiling on
//! the CPU, both twins, float32. `cargo xtask bench` is the suite's runner;
//! this gives Criterion's statistics and regression tracking for one crate.

use std::time::Duration;

use bench_core::{time_iterations, DeviceKind, Precision, Preset};
use bench_transfer::{mlx, torch, CeilingConfig, SwitchConfig};
use criterion::{criterion_group, criterion_main, Criterion};
use fw_mlx::MlxRuntime;
use fw_torch::TorchRuntime;

fn transfer(c: &mut Criterion) {
    let threads = bench_core::env::default_threads();
    // One framework per process (see bench_core::cli::harness_framework).
    let framework = bench_core::cli::harness_framework(&[fw_mlx::HOOKS, fw_torch::HOOKS], threads);
    let switch = SwitchConfig::for_preset(Preset::Quick);
    let ceilings = CeilingConfig::for_cell(Preset::Quick, DeviceKind::Cpu);
    let inputs = switch.inputs(0);
    let mut group = c.benchmark_group("transfer-cpu-f32");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));

    match framework {
        bench_core::Framework::Mlx => {
            let mlx_rt =
                MlxRuntime::new(DeviceKind::Cpu, Precision::F32, threads).expect("MLX on CPU");
            let mut mlx_switch = mlx::Switch::new(&mlx_rt, &inputs).expect("MLX inputs");
            group.bench_function("switch-iteration/mlx", |b| {
                b.iter_custom(|iters| {
                    time_iterations(&mlx_rt, iters, || {
                        mlx_switch.iterate().expect("MLX iteration")
                    })
                })
            });
            let mlx_matmul =
                mlx::Matmul::new(&mlx_rt, ceilings.matmul_size, 0).expect("MLX matmul");
            group.bench_function("matmul/mlx", |b| {
                b.iter_custom(|iters| {
                    time_iterations(&mlx_rt, iters, || mlx_matmul.run().expect("MLX matmul"))
                })
            });
        }
        bench_core::Framework::Torch => {
            let torch_rt = TorchRuntime::new(DeviceKind::Cpu, Precision::F32, threads)
                .expect("PyTorch on CPU");
            let mut torch_switch = torch::Switch::new(&torch_rt, &inputs).expect("PyTorch inputs");
            group.bench_function("switch-iteration/torch", |b| {
                b.iter_custom(|iters| {
                    time_iterations(&torch_rt, iters, || {
                        torch_switch.iterate().expect("PyTorch iteration")
                    })
                })
            });
            let torch_matmul =
                torch::Matmul::new(&torch_rt, ceilings.matmul_size, 0).expect("PyTorch matmul");
            group.bench_function("matmul/torch", |b| {
                b.iter_custom(|iters| {
                    time_iterations(&torch_rt, iters, || {
                        torch_matmul.run().expect("PyTorch matmul")
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, transfer);
criterion_main!(benches);
