//! Criterion harness: the quick preset's model (tiny.en, offline copy
//! unless the Hub answers) on the JFK clip, CPU, float32, both twins: the
//! encoder of one window and the whole transcription. `cargo xtask bench`
//! is the suite's runner; this gives Criterion's statistics for one crate.

use std::time::Duration;

use bench_core::{Execution, Precision, Preset, Runtime};
use bench_twin::harness::{bench_synced, group, CpuTwin};
use bench_whisper::pipeline::WhisperTwin;
use bench_whisper::{mlx, torch, Options, Workload};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};

fn bench_twin<T: WhisperTwin>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    runtime: &dyn Runtime,
    twin: &T,
    work: &Workload,
) {
    let transcriber = work.transcriber();
    let windows = transcriber.windows(&work.audio.samples).expect("log-mel");
    bench_synced(group, format!("encode/{name}"), runtime, || {
        let features = twin.encode(&windows[0]).expect("encode");
        twin.cross_kv(&features).expect("cross K/V");
    });
    bench_synced(group, format!("transcribe/{name}"), runtime, || {
        transcriber
            .transcribe(twin, &work.audio.samples)
            .expect("transcribe");
    });
}

fn whisper(c: &mut Criterion) {
    let twin = CpuTwin::for_this_process(Precision::F32);
    let options = Options::for_preset(Preset::Quick).expect("the jfk asset");
    let work = Workload::load(options).expect("model and audio");
    let model = &work.model;
    let mut group = group(c, "whisper-cpu-f32", Duration::from_secs(10));
    match &twin {
        CpuTwin::Mlx(rt) => {
            let mlx_twin = mlx::Whisper::new(
                rt,
                &model.weights,
                &model.dims,
                &model.masks,
                Execution::Best,
            )
            .expect("MLX weights");
            bench_twin(&mut group, "mlx", rt, &mlx_twin, &work);
        }
        CpuTwin::Torch(rt) => {
            let torch_twin = torch::Whisper::new(
                rt,
                &model.weights,
                &model.dims,
                &model.masks,
                Execution::Best,
            )
            .expect("PyTorch weights");
            bench_twin(&mut group, "torch", rt, &torch_twin, &work);
        }
    }
    group.finish();
}

criterion_group!(benches, whisper);
criterion_main!(benches);
