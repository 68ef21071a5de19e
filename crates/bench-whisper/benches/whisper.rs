//! Criterion harness: the quick preset's model (tiny.en, offline copy
//! unless the Hub answers) on the JFK clip, CPU, float32, both twins: the
//! encoder of one window and the whole transcription. `cargo xtask bench`
//! is the suite's runner; this gives Criterion's statistics for one crate.

use std::time::Duration;

use bench_core::{time_iterations, DeviceKind, Precision, Runtime};
use bench_whisper::pipeline::WhisperTwin;
use bench_whisper::source::{SourcePreference, DEFAULT_MODEL};
use bench_whisper::{mlx, torch, Options, Workload};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use fw_mlx::MlxRuntime;
use fw_torch::TorchRuntime;

fn bench_twin<T: WhisperTwin>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    runtime: &dyn Runtime,
    twin: &T,
    work: &Workload,
) {
    let transcriber = work.transcriber();
    let windows = transcriber.windows(&work.audio.samples).expect("log-mel");
    group.bench_function(format!("encode/{name}"), |b| {
        b.iter_custom(|iters| {
            time_iterations(runtime, iters, || {
                let features = twin.encode(&windows[0]).expect("encode");
                twin.cross_kv(&features).expect("cross K/V");
            })
        })
    });
    group.bench_function(format!("transcribe/{name}"), |b| {
        b.iter_custom(|iters| {
            time_iterations(runtime, iters, || {
                transcriber
                    .transcribe(twin, &work.audio.samples)
                    .expect("transcribe");
            })
        })
    });
}

fn whisper(c: &mut Criterion) {
    let threads = bench_core::env::default_threads();
    // One framework per process (see bench_core::cli::harness_framework).
    let framework = bench_core::cli::harness_framework(&[fw_mlx::HOOKS, fw_torch::HOOKS], threads);
    let work = Workload::load(Options {
        model: DEFAULT_MODEL.to_owned(),
        source: SourcePreference::Auto,
        audio: bench_core::assets::asset_file("jfk", "jfk.wav").expect("the jfk asset"),
        language: "en".to_owned(),
    })
    .expect("model and audio");
    let model = &work.model;
    let mut group = c.benchmark_group("whisper-cpu-f32");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));

    match framework {
        bench_core::Framework::Mlx => {
            let mlx_rt =
                MlxRuntime::new(DeviceKind::Cpu, Precision::F32, threads).expect("MLX on CPU");
            let mlx_twin = mlx::Whisper::new(&mlx_rt, &model.weights, &model.dims, &model.masks)
                .expect("MLX weights");
            bench_twin(&mut group, "mlx", &mlx_rt, &mlx_twin, &work);
            drop(mlx_twin);
        }
        bench_core::Framework::Torch => {
            let torch_rt = TorchRuntime::new(DeviceKind::Cpu, Precision::F32, threads)
                .expect("PyTorch on CPU");
            let torch_twin =
                torch::Whisper::new(&torch_rt, &model.weights, &model.dims, &model.masks)
                    .expect("PyTorch weights");
            bench_twin(&mut group, "torch", &torch_rt, &torch_twin, &work);
        }
    }
    group.finish();
}

criterion_group!(benches, whisper);
criterion_main!(benches);
