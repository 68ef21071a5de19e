//! Best and eager execution train alike: the PyTorch twin's fused AdamW
//! (best) and libtorch's per-parameter AdamW (eager) take the same steps
//! from one checkpoint; MLX's compiled step (best) and its step run
//! uncompiled are compared by the parity tests' MLX-vs-PyTorch checks.

mod common;

use bench_core::{DeviceKind, Execution, Precision};
use bench_lm_train::{torch, weights, Dataset, LmTrainer};
use common::{relative_difference, small_config};
use fw_torch::TorchRuntime;

#[test]
fn torch_best_and_eager_take_the_same_steps() {
    let config = small_config();
    let seed = 5;
    let data = Dataset::shakespeare(&config, seed).unwrap();
    let checkpoint = weights::cached_checkpoint(&config.model, seed).unwrap();
    let runtime = TorchRuntime::new(DeviceKind::Cpu, Precision::F32, 2).unwrap();
    let train = |execution| {
        let mut trainer =
            torch::Trainer::new(&runtime, &config, &checkpoint, seed, execution).unwrap();
        let losses: Vec<f32> = (0..6)
            .map(|index| {
                let batch = trainer.upload(&data.train_batch(index)).unwrap();
                trainer.train_step(&batch).unwrap()
            })
            .collect();
        (losses, trainer.optimizer(), trainer.execution())
    };
    let (best, best_optimizer, best_execution) = train(Execution::Best);
    let (eager, eager_optimizer, eager_execution) = train(Execution::Eager);
    assert_eq!(best_optimizer, "fused");
    assert_eq!(eager_optimizer, "per-parameter");
    // No CUDA here: both run op by op, and their rows say so.
    assert_eq!((best_execution, eager_execution), ("eager", "eager"));
    eprintln!("fused {best:?}\nper-parameter {eager:?}");
    for (a, b) in best.iter().zip(&eager) {
        assert!(
            relative_difference(*a, *b) < 1e-5,
            "fused and per-parameter AdamW losses differ: {a} vs {b}"
        );
    }
    assert!(best[5] < best[0], "the loss falls: {best:?}");
}

/// `--set record_losses=true` (the GPU self-test's knob): each twin's row
/// lists every step's loss, warm-up included, and the twins' lists agree;
/// without it the row lists none.
#[test]
fn the_row_lists_every_steps_loss_when_asked() {
    use bench_core::{Cell, MeasureSettings, Settings};
    use bench_lm_train::LmTrain;
    use bench_twin::TwinBenchmark;

    let cell = |record: &str| Cell {
        options: [
            ("layers", "2"),
            ("dim", "64"),
            ("heads", "4"),
            ("ffn", "256"),
            ("context", "32"),
            ("batch_size", "2"),
            ("text_files", "1"),
            ("eval_batches", "1"),
            ("warmup_steps", "0"),
            ("record_losses", record),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        knobs: &bench_lm_train::workload::KNOBS,
        measure: MeasureSettings::new(1, 3, 3, 600),
        ..Cell::for_checks()
    };
    let losses =
        |settings: &Settings| bench_core::settings::recorded_losses(settings).map(Result::unwrap);
    let (mlx_rt, torch_rt) = bench_twin::testing::cpu_runtimes(Precision::F32, 1);
    let recorded = cell("true");
    let work = LmTrain::prepare(&recorded).unwrap();
    let mlx = LmTrain::mlx(&mlx_rt, &recorded, &work).unwrap();
    let torch = LmTrain::torch(&torch_rt, &recorded, &work).unwrap();
    let (mlx, torch) = (
        losses(&mlx[0].settings).unwrap(),
        losses(&torch[0].settings).unwrap(),
    );
    eprintln!("mlx {mlx:?}\ntorch {torch:?}");
    assert_eq!((mlx.len(), torch.len()), (4, 4), "warm-up and timed steps");
    for (a, b) in mlx.iter().zip(&torch) {
        assert!(relative_difference(*a, *b) < 1e-4, "{mlx:?} vs {torch:?}");
    }
    assert!(torch[3] < torch[0], "the loss falls: {torch:?}");

    let plain = cell("false");
    let rows = LmTrain::torch(&torch_rt, &plain, &work).unwrap();
    assert_eq!(losses(&rows[0].settings), None);
}
