//! bfloat16 fine-tuning is the same mixed precision on both twins: float32
//! weights and AdamW state, the forward and backward in bfloat16. The
//! twins agree with each other to bfloat16 rounding, and stay close to
//! the float32 run.

mod common;

use bench_bert::{mlx, torch, FineTune, OptimizerSettings, SpamSplit};
use bench_core::Precision;

const SENTENCES: [&str; 3] = [
    "A man is playing a guitar.",
    "The stock market fell sharply today, and investors worried about rates.",
    "Free money!!! Click here to claim your prize before midnight.",
];

#[test]
fn bf16_hidden_states_match_across_twins_and_track_float32() {
    let (config, weights) = common::minilm(1);
    let tokens = common::minilm_tokenizer(16)
        .encode(&SENTENCES.map(String::from))
        .unwrap();
    let (mut mlx_bf16, mut torch_bf16) = common::both_models_at(&config, &weights, Precision::Bf16);
    let (_, mut torch_f32) = common::both_models(&config, &weights);

    let mlx_hidden = mlx_bf16.hidden_states(&tokens).unwrap();
    let torch_hidden = torch_bf16.hidden_states(&tokens).unwrap();
    let reference = torch_f32.hidden_states(&tokens).unwrap();
    let twins = mlx_hidden.max_abs_diff(&torch_hidden).unwrap();
    let mlx_vs_f32 = mlx_hidden.max_abs_diff(&reference).unwrap();
    let torch_vs_f32 = torch_hidden.max_abs_diff(&reference).unwrap();
    println!(
        "bf16 hidden states: MLX vs PyTorch {twins:e}; vs float32: MLX {mlx_vs_f32:e}, \
         PyTorch {torch_vs_f32:e}"
    );
    // The computation really ran in bfloat16: it is not float32-exact.
    assert!(
        torch_vs_f32 > 1e-3,
        "PyTorch bf16 equals float32 ({torch_vs_f32})"
    );
    assert!(mlx_vs_f32 > 1e-3, "MLX bf16 equals float32 ({mlx_vs_f32})");
    // ... and both twins stay close to float32 and to each other (values up
    // to about 6; bfloat16 keeps 8 bits of mantissa through 6 layers).
    // Measured on CPU: 1.3e-2 and 4.4e-2 from float32, 4.8e-2 apart.
    assert!(mlx_vs_f32 < 0.2 && torch_vs_f32 < 0.2);
    assert!(twins < 0.2, "bf16 twins differ by {twins}");
}

#[test]
fn bf16_adamw_steps_match_across_twins() {
    let (config, weights) = common::minilm(2);
    let split = SpamSplit::load().unwrap();
    let encoded = common::minilm_tokenizer(16)
        .encode_emails(&split.train[..8])
        .unwrap();
    let batches = encoded.batches(&(0..8).collect::<Vec<_>>(), 4);
    let settings = OptimizerSettings::adamw(1e-3);
    let (mlx_rt, torch_rt) = common::runtimes_at(Precision::Bf16);
    let mut mlx_trainer = mlx::Trainer::new(
        &mlx_rt,
        &config,
        &weights,
        &settings,
        bench_core::Execution::Best,
    )
    .unwrap();
    let mut torch_trainer = torch::Trainer::new(
        &torch_rt,
        &config,
        &weights,
        &settings,
        bench_core::Execution::Best,
    )
    .unwrap();
    let (f32_mlx_rt, _) = common::runtimes();
    let mut f32_trainer = mlx::Trainer::new(
        &f32_mlx_rt,
        &config,
        &weights,
        &settings,
        bench_core::Execution::Best,
    )
    .unwrap();
    let before = torch_trainer.logits(&batches[0].tokens).unwrap();
    for (step, batch) in batches.iter().enumerate() {
        mlx_trainer.step(batch).unwrap();
        torch_trainer.step(batch).unwrap();
        f32_trainer.step(batch).unwrap();
        let (mlx_loss, torch_loss, f32_loss) = (
            mlx_trainer.last_loss().unwrap(),
            torch_trainer.last_loss().unwrap(),
            f32_trainer.last_loss().unwrap(),
        );
        println!("step {step}: bf16 loss MLX {mlx_loss}, PyTorch {torch_loss}; f32 {f32_loss}");
        assert!(
            (mlx_loss - torch_loss).abs() < 0.01 * torch_loss.abs().max(1.0),
            "step {step}: bf16 losses {mlx_loss} vs {torch_loss}"
        );
        assert!(
            (mlx_loss - f32_loss).abs() < 0.02 * f32_loss.abs().max(1.0),
            "step {step}: bf16 loss {mlx_loss} vs float32 {f32_loss}"
        );
    }
    // Measured on CPU: bf16 losses agree to 5e-4 relative, and stay within
    // 1e-3 of float32's.
    let after = torch_trainer.logits(&batches[0].tokens).unwrap();
    let moved = after.max_abs_diff(&before).unwrap();
    println!("bf16 logits moved {moved}");
    assert!(moved > 0.05, "training barely moved the logits ({moved})");
}
