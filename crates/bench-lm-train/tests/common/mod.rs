//! What the twins' tests share: a small configuration and the two trainers
//! built from one checkpoint.

#![allow(dead_code)] // each test binary uses a part

use bench_core::Precision;
use bench_lm_train::workload::MINILM_VOCAB_SIZE;
use bench_lm_train::{mlx, torch, weights, Dataset, LmConfig, LmTrainer, ModelConfig, TrainConfig};
use bench_twin::testing::cpu_runtimes;
use fw_mlx::MlxRuntime;
use fw_torch::TorchRuntime;

/// Small enough for debug builds on 2 cores: 2 layers, dim 64, context 32,
/// batch 4, the real 30522-token vocabulary, one play.
pub fn small_config() -> LmConfig {
    LmConfig {
        model: ModelConfig {
            vocab_size: MINILM_VOCAB_SIZE,
            layers: 2,
            dim: 64,
            heads: 4,
            ffn_dim: 256,
            context: 32,
            dropout: 0.0,
        },
        train: TrainConfig {
            batch_size: 4,
            learning_rate: 1e-3,
            weight_decay: 1e-5,
            warmup_steps: 3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        text_files: 1,
        eval_batches: 4,
    }
}

pub struct Twins {
    pub mlx: mlx::Trainer,
    pub torch: torch::Trainer,
    pub data: Dataset,
    // the runtimes live as long as the trainers
    _mlx_rt: MlxRuntime,
    _torch_rt: TorchRuntime,
}

/// Both trainers from the same seeded checkpoint, on the same text.
pub fn twins(config: &LmConfig, precision: Precision, seed: u64) -> Twins {
    let data = Dataset::shakespeare(config, seed).expect("Shakespeare text");
    let checkpoint = weights::cached_checkpoint(&config.model, seed).expect("checkpoint");
    let (mlx_rt, torch_rt) = cpu_runtimes(precision, 2);
    Twins {
        mlx: mlx::Trainer::new(
            &mlx_rt,
            config,
            &checkpoint,
            seed,
            bench_core::Execution::Best,
        )
        .unwrap(),
        torch: torch::Trainer::new(
            &torch_rt,
            config,
            &checkpoint,
            seed,
            bench_core::Execution::Best,
        )
        .unwrap(),
        data,
        _mlx_rt: mlx_rt,
        _torch_rt: torch_rt,
    }
}

impl Twins {
    /// Trains both on batches 0..steps; returns (MLX losses, PyTorch losses).
    pub fn train(&mut self, steps: usize) -> (Vec<f32>, Vec<f32>) {
        let mut losses = (Vec::new(), Vec::new());
        for index in 0..steps {
            let batch = self.data.train_batch(index);
            let mlx_batch = self.mlx.upload(&batch).unwrap();
            let torch_batch = self.torch.upload(&batch).unwrap();
            losses.0.push(self.mlx.train_step(&mlx_batch).unwrap());
            losses.1.push(self.torch.train_step(&torch_batch).unwrap());
        }
        losses
    }

    /// Held-out loss of both: (MLX, PyTorch).
    pub fn eval_losses(&mut self, batches: usize) -> (f32, f32) {
        let held_out = self.data.eval_batches(batches);
        let mlx_batches: Vec<_> = held_out
            .iter()
            .map(|b| self.mlx.upload(b).unwrap())
            .collect();
        let torch_batches: Vec<_> = held_out
            .iter()
            .map(|b| self.torch.upload(b).unwrap())
            .collect();
        (
            self.mlx.eval_loss(&mlx_batches).unwrap(),
            self.torch.eval_loss(&torch_batches).unwrap(),
        )
    }
}

pub fn relative_difference(a: f32, b: f32) -> f32 {
    (a - b).abs() / b.abs().max(f32::MIN_POSITIVE)
}
