//! Both twins learn on real text: over 30 steps on Shakespeare the training
//! loss and the held-out loss fall clearly, from the same start.

mod common;

use bench_core::Precision;
use common::{relative_difference, small_config, twins};

#[test]
fn loss_falls_on_shakespeare_for_both_twins() {
    let config = small_config();
    let mut twins = twins(&config, Precision::F32, 11);
    let eval_batches = config.eval_batches;
    let (mlx_before, torch_before) = twins.eval_losses(eval_batches);
    let steps = 30;
    let (mlx_losses, torch_losses) = twins.train(steps);
    let (mlx_after, torch_after) = twins.eval_losses(eval_batches);
    eprintln!("MLX losses {mlx_losses:?}\nPyTorch losses {torch_losses:?}");
    eprintln!("held-out: MLX {mlx_before} -> {mlx_after}, PyTorch {torch_before} -> {torch_after}");

    // a uniform guess over 30522 tokens costs ln(30522) = 10.3 nats
    let uniform = (config.model.vocab_size as f32).ln();
    for (name, losses, before, after) in [
        ("MLX", &mlx_losses, mlx_before, mlx_after),
        ("PyTorch", &torch_losses, torch_before, torch_after),
    ] {
        assert!(
            (losses[0] - uniform).abs() < 0.5,
            "{name}: first loss {} is not near ln(vocab) {uniform}",
            losses[0]
        );
        let last_five = losses[steps - 5..].iter().sum::<f32>() / 5.0;
        assert!(
            last_five < losses[0] - 1.5,
            "{name}: training loss {} -> {last_five} (mean of the last 5)",
            losses[0]
        );
        assert!(
            after < before - 1.5,
            "{name}: held-out loss {before} -> {after}"
        );
    }
    // the same start and the same batches: the twins learn alike
    assert!(relative_difference(mlx_after, torch_after) < 1e-3);
}
