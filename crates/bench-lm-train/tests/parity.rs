//! The twins train the same model: loaded from one checkpoint they hold the
//! same weights, the same batches give the same first-step loss (float32),
//! and losses, held-out loss and weights stay close over several steps,
//! which they could not if either optimiser skipped or changed an update.
//! A bad checkpoint is an error naming the tensor and both shapes.

mod common;

use std::path::{Path, PathBuf};

use bench_core::host::HostTensor;
use bench_core::{DeviceKind, Precision};
use bench_lm_train::weights::{initial_weights, write_checkpoint};
use bench_lm_train::{mlx, torch, LmConfig, LmTrainer, ModelConfig};
use bench_twin::testing::cpu_runtimes;
use common::{relative_difference, small_config, twins};
use fw_mlx::MlxRuntime;

/// Largest |a - b| over all weights, and whether the names agree.
fn weights_difference(a: &[(String, HostTensor)], b: &[(String, HostTensor)]) -> f32 {
    let names = |w: &[(String, HostTensor)]| w.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(a), names(b), "the twins' parameter names differ");
    a.iter()
        .zip(b)
        .map(|((name, x), (_, y))| x.max_abs_diff(y).unwrap_or_else(|e| panic!("{name}: {e}")))
        .fold(0.0, f32::max)
}

#[test]
fn float32_twins_take_the_same_steps() {
    let config = small_config();
    let mut twins = twins(&config, Precision::F32, 11);
    let initial = twins.mlx.weights().unwrap();
    assert_eq!(
        weights_difference(&initial, &twins.torch.weights().unwrap()),
        0.0,
        "both twins hold the checkpoint's float32 values exactly"
    );

    let steps = 5;
    let (mlx_losses, torch_losses) = twins.train(steps);
    let first = relative_difference(mlx_losses[0], torch_losses[0]);
    let worst = (0..steps)
        .map(|i| relative_difference(mlx_losses[i], torch_losses[i]))
        .fold(0.0, f32::max);
    eprintln!("losses MLX {mlx_losses:?}\nlosses PyTorch {torch_losses:?}");
    eprintln!("first-step relative difference {first:e}, worst over {steps} steps {worst:e}");
    // float32 sums in a different order: about 1e-7 relative; 1e-5 allows
    // for the 30522-way softmax
    assert!(
        first < 1e-5,
        "first-step losses differ by {first:e} (relative)"
    );
    assert!(worst < 1e-3, "losses drift apart: {worst:e} (relative)");
    // the learning rate is 1e-3 after warm-up: the losses must move
    assert!(mlx_losses[steps - 1] < mlx_losses[0] - 0.05);

    let mlx_weights = twins.mlx.weights().unwrap();
    let torch_weights = twins.torch.weights().unwrap();
    let apart = weights_difference(&mlx_weights, &torch_weights);
    let moved = weights_difference(&mlx_weights, &initial);
    let torch_moved = weights_difference(&torch_weights, &initial);
    eprintln!(
        "after {steps} steps: weights apart {apart:e}, moved {moved:e} (PyTorch {torch_moved:e})"
    );
    // each AdamW step moves a weight by up to about lr = 1e-3: both
    // optimisers really stepped, and by the same amounts
    assert!(moved > 1e-3 && torch_moved > 1e-3);
    assert!(apart < moved / 20.0, "weights apart by {apart:e}");

    let (mlx_eval, torch_eval) = twins.eval_losses(2);
    let eval = relative_difference(mlx_eval, torch_eval);
    eprintln!("held-out loss MLX {mlx_eval} PyTorch {torch_eval}: {eval:e}");
    assert!(eval < 1e-3);
}

#[test]
fn bfloat16_twins_agree_loosely() {
    let config = small_config();
    let mut twins = twins(&config, Precision::Bf16, 11);
    let (mlx_losses, torch_losses) = twins.train(3);
    eprintln!("bf16 losses MLX {mlx_losses:?}\nbf16 losses PyTorch {torch_losses:?}");
    for (m, t) in mlx_losses.iter().zip(&torch_losses) {
        assert!(m.is_finite() && t.is_finite());
        // bfloat16 keeps 8 bits: each op rounds at about 4e-3 relative
        assert!(relative_difference(*m, *t) < 2e-2, "{m} vs {t}");
    }
}

#[test]
fn dropout_acts_in_training_on_both_twins_and_not_in_evaluation() {
    let plain = small_config();
    let mut dropped = small_config();
    dropped.model.dropout = 0.1;
    let mut without = twins(&plain, Precision::F32, 11);
    let mut with = twins(&dropped, Precision::F32, 11);
    // evaluation never drops: the same start gives the same held-out loss
    let (eval_mlx, eval_torch) = with.eval_losses(1);
    assert_eq!((eval_mlx, eval_torch), without.eval_losses(1));
    let (plain_mlx, plain_torch) = without.train(1);
    let (dropped_mlx, dropped_torch) = with.train(1);
    eprintln!("first loss without dropout {plain_mlx:?} {plain_torch:?}, with {dropped_mlx:?} {dropped_torch:?}");
    for (name, plain, dropped) in [
        ("MLX", plain_mlx[0], dropped_mlx[0]),
        ("PyTorch", plain_torch[0], dropped_torch[0]),
    ] {
        assert!(
            (plain - dropped).abs() > 1e-4,
            "{name}: dropout changed nothing"
        );
    }
    // the same rate at the same places: the masks differ, the effect is alike
    assert!(relative_difference(dropped_mlx[0], dropped_torch[0]) < 0.02);
}

fn tiny_model() -> ModelConfig {
    ModelConfig {
        vocab_size: 100,
        layers: 2,
        dim: 16,
        heads: 2,
        ffn_dim: 32,
        context: 8,
        dropout: 0.0,
    }
}

/// Writes a checkpoint of the tiny model, changed by `edit`.
fn edited_checkpoint(label: &str, edit: impl FnOnce(&mut Vec<(String, HostTensor)>)) -> PathBuf {
    let mut weights = initial_weights(&tiny_model(), 0).unwrap();
    edit(&mut weights);
    let dir = std::env::temp_dir().join("mlx-vs-torch-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!(
        "lm-train-{label}-{}.safetensors",
        std::process::id()
    ));
    write_checkpoint(&path, &weights).unwrap();
    path
}

/// The error message of each twin loading `path`.
fn load_errors(path: &Path) -> [String; 2] {
    let config = LmConfig {
        model: tiny_model(),
        ..small_config()
    };
    let (mlx_rt, torch_rt) = cpu_runtimes(Precision::F32, 1);
    let mlx = mlx::Trainer::new(&mlx_rt, &config, path, 0, bench_core::Execution::Best).err();
    let torch = torch::Trainer::new(&torch_rt, &config, path, 0, bench_core::Execution::Best).err();
    let message = |e: Option<anyhow::Error>| format!("{:#}", e.expect("loading must fail"));
    [message(mlx), message(torch)]
}

#[test]
fn bad_checkpoints_are_errors_that_name_the_tensor_and_shapes() {
    let good = edited_checkpoint("good", |_| {});
    let config = LmConfig {
        model: tiny_model(),
        ..small_config()
    };
    let mlx_rt = MlxRuntime::new(DeviceKind::Cpu, Precision::F32, 1).unwrap();
    assert!(mlx::Trainer::new(&mlx_rt, &config, &good, 0, bench_core::Execution::Best).is_ok());

    let missing = edited_checkpoint("missing", |w| w.retain(|(n, _)| n != "layers.1.ln2.bias"));
    for error in load_errors(&missing) {
        assert!(
            error.contains("tensor layers.1.ln2.bias is missing (expected shape [16])"),
            "{error}"
        );
        assert!(error.contains(&missing.display().to_string()), "{error}");
    }

    let misshaped = edited_checkpoint("misshaped", |w| {
        let bias = w.iter_mut().find(|(n, _)| n == "out_proj.bias").unwrap();
        bias.1 = HostTensor::new(vec![10], vec![0.0; 10]).unwrap();
    });
    for error in load_errors(&misshaped) {
        assert!(
            error.contains("tensor out_proj.bias has shape [10], expected [100]"),
            "{error}"
        );
        assert!(error.contains(&misshaped.display().to_string()), "{error}");
    }

    let extra = edited_checkpoint("extra", |w| {
        w.push((
            "layers.2.ln1.weight".into(),
            HostTensor::new(vec![16], vec![1.0; 16]).unwrap(),
        ))
    });
    for error in load_errors(&extra) {
        assert!(
            error.contains("tensor layers.2.ln1.weight [16] is not used by the model"),
            "{error}"
        );
    }

    let unreadable = std::env::temp_dir().join("mlx-vs-torch-tests/no-such.safetensors");
    for error in load_errors(&unreadable) {
        assert!(error.contains("no-such.safetensors"), "{error}");
    }
    for path in [good, missing, misshaped, extra] {
        let _ = std::fs::remove_file(path);
    }
}
