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
