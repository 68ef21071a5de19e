//! The twins compute the same function on the real MiniLM weights: the
//! same hidden states and logits for the same sentences, and the same
//! losses and weights through a few AdamW steps on real emails.

mod common;

use bench_bert::{mlx, torch, FineTune, OptimizerSettings, SpamSplit};

const SENTENCES: [&str; 4] = [
    "A man is playing a guitar.",
    "The stock market fell sharply today, and investors worried about rates.",
    "Hi",
    "Free money!!! Click here to claim your prize before midnight.",
];

#[test]
fn hidden_states_and_logits_match_on_minilm() {
    let (config, weights) = common::minilm(1);
    // 24 tokens: the short sentences are padded, so the mask matters.
    let tokens = common::minilm_tokenizer(24)
        .encode(&SENTENCES.map(String::from))
        .unwrap();
    assert!(tokens.mask.contains(&0), "some sequences must be padded");
    let (mut mlx_model, mut torch_model) = common::both_models(&config, &weights);

    let mlx_hidden = mlx_model.hidden_states(&tokens).unwrap();
    let torch_hidden = torch_model.hidden_states(&tokens).unwrap();
    assert_eq!(mlx_hidden.shape, [4, 24, 384]);
    let hidden_diff = mlx_hidden.max_abs_diff(&torch_hidden).unwrap();
    let largest = torch_hidden.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    println!("hidden states: max |MLX - PyTorch| = {hidden_diff:e} (largest |value| {largest})");
    // float32 through 6 layers; measured 2.6e-5 on values up to 6
    assert!(hidden_diff < 1e-4, "hidden states differ by {hidden_diff}");
    // The states are not trivially equal (e.g. all zero).
    assert!(largest > 0.1);

    let mlx_logits = mlx_model.logits(&tokens).unwrap();
    let torch_logits = torch_model.logits(&tokens).unwrap();
    assert_eq!(mlx_logits.shape, [4, 2]);
    let logit_diff = mlx_logits.max_abs_diff(&torch_logits).unwrap();
    println!("logits: max |MLX - PyTorch| = {logit_diff:e}");
    assert!(logit_diff < 1e-5, "logits differ by {logit_diff}");
}

#[test]
fn padding_does_not_change_real_tokens() {
    let (config, weights) = common::minilm(1);
    let text = [SENTENCES[0].to_owned()];
    let short = common::minilm_tokenizer(12).encode(&text).unwrap();
    let long = common::minilm_tokenizer(32).encode(&text).unwrap();
    let real = short.mask.iter().filter(|&&m| m == 1).count();
    assert!(real < 12, "the sentence must be padded even at 12 tokens");
    let (mut mlx_model, mut torch_model) = common::both_models(&config, &weights);
    let width = config.hidden_size;
    let real_rows = |h: &bench_core::host::HostTensor| h.data[..real * width].to_vec();
    for (name, short_h, long_h) in [
        (
            "MLX",
            mlx_model.hidden_states(&short).unwrap(),
            mlx_model.hidden_states(&long).unwrap(),
        ),
        (
            "PyTorch",
            torch_model.hidden_states(&short).unwrap(),
            torch_model.hidden_states(&long).unwrap(),
        ),
    ] {
        let diff = real_rows(&short_h)
            .iter()
            .zip(real_rows(&long_h))
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff < 1e-4, "{name}: padding changed real tokens by {diff}");
    }
}

#[test]
fn adamw_steps_match_on_real_emails() {
    let (config, weights) = common::minilm(2);
    let split = SpamSplit::load().unwrap();
    let encoded = common::minilm_tokenizer(32)
        .encode_emails(&split.train[..12])
        .unwrap();
    let batches = encoded.batches(&(0..12).collect::<Vec<_>>(), 4);
    // A large learning rate, so that the steps move the weights visibly.
    let settings = OptimizerSettings::adamw(1e-3);
    let (mlx_rt, torch_rt) = common::runtimes();
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
    let before = torch_trainer.logits(&batches[0].tokens).unwrap();
    for (step, batch) in batches.iter().enumerate() {
        mlx_trainer.step(batch).unwrap();
        torch_trainer.step(batch).unwrap();
        let (mlx_loss, torch_loss) = (
            mlx_trainer.last_loss().unwrap(),
            torch_trainer.last_loss().unwrap(),
        );
        println!("step {step}: loss MLX {mlx_loss}, PyTorch {torch_loss}");
        assert!(
            (mlx_loss - torch_loss).abs() < 1e-4 * torch_loss.abs().max(1.0),
            "step {step}: losses {mlx_loss} vs {torch_loss}"
        );
    }
    let mlx_after = mlx_trainer.logits(&batches[0].tokens).unwrap();
    let torch_after = torch_trainer.logits(&batches[0].tokens).unwrap();
    let moved = torch_after.max_abs_diff(&before).unwrap();
    let diff = mlx_after.max_abs_diff(&torch_after).unwrap();
    println!("logits after 3 steps: moved {moved}, max |MLX - PyTorch| = {diff:e}");
    assert!(moved > 0.05, "training barely moved the logits ({moved})");
    // Three steps of AdamW amplify float32 rounding (sign-like updates of
    // gradients near zero): a looser bound than the forward pass.
    assert!(diff < 2e-3, "logits after training differ by {diff}");
}

#[test]
fn torch_fused_best_and_per_parameter_eager_steps_match() {
    let (config, weights) = common::minilm(2);
    let split = SpamSplit::load().unwrap();
    let encoded = common::minilm_tokenizer(32)
        .encode_emails(&split.train[..12])
        .unwrap();
    let batches = encoded.batches(&(0..12).collect::<Vec<_>>(), 4);
    let settings = OptimizerSettings::adamw(1e-3);
    let (_, torch_rt) = common::runtimes();
    let run = |execution| {
        let mut trainer =
            torch::Trainer::new(&torch_rt, &config, &weights, &settings, execution).unwrap();
        let losses: Vec<f32> = batches
            .iter()
            .map(|batch| {
                trainer.step(batch).unwrap();
                trainer.last_loss().unwrap()
            })
            .collect();
        let logits = trainer.logits(&batches[0].tokens).unwrap();
        (losses, logits, trainer.optimizer())
    };
    let (best, best_logits, best_optimizer) = run(bench_core::Execution::Best);
    let (eager, eager_logits, eager_optimizer) = run(bench_core::Execution::Eager);
    assert_eq!(
        (best_optimizer, eager_optimizer),
        ("fused", "per-parameter")
    );
    for (a, b) in best.iter().zip(&eager) {
        assert!((a - b).abs() < 1e-5 * b.abs().max(1.0), "losses {a} vs {b}");
    }
    let diff = best_logits.max_abs_diff(&eager_logits).unwrap();
    assert!(
        diff < 1e-4,
        "fused and per-parameter AdamW logits differ by {diff}"
    );
}

/// `--set record_losses=true` (the GPU self-test's knob): each twin's step
/// row lists every step's loss, warm-up included, and the twins' lists
/// agree; without it the row lists none.
#[test]
fn the_step_row_lists_every_steps_loss_when_asked() {
    use bench_core::{Cell, MeasureSettings, Settings};
    use bench_twin::TwinBenchmark;

    let cell = |record: &str| Cell {
        options: [
            ("seq_len", "16"),
            ("batch_size", "2"),
            ("train_emails", "8"),
            ("test_emails", "2"),
            ("time_to_accuracy", "false"),
            ("offline", "true"),
            ("lr", "1e-3"),
            ("record_losses", record),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        knobs: &bench_bert::workload::KNOBS,
        measure: MeasureSettings::new(1, 3, 3, 600),
        ..Cell::for_checks()
    };
    let losses =
        |settings: &Settings| bench_core::settings::recorded_losses(settings).map(Result::unwrap);
    let (mlx_rt, torch_rt) = common::runtimes();
    let recorded = cell("true");
    let prepared = bench_bert::Bert::prepare(&recorded).unwrap();
    let mlx = bench_bert::Bert::mlx(&mlx_rt, &recorded, &prepared).unwrap();
    let torch = bench_bert::Bert::torch(&torch_rt, &recorded, &prepared).unwrap();
    let (mlx, torch) = (
        losses(&mlx[0].settings).unwrap(),
        losses(&torch[0].settings).unwrap(),
    );
    println!("mlx {mlx:?}\ntorch {torch:?}");
    assert_eq!((mlx.len(), torch.len()), (4, 4), "warm-up and timed steps");
    for (a, b) in mlx.iter().zip(&torch) {
        assert!(
            (a - b).abs() < 1e-4 * b.abs().max(1.0),
            "{mlx:?} vs {torch:?}"
        );
    }
    // The last step's loss is the row's last_loss.
    let pairs = bench_core::settings::Pairs::from(
        &bench_bert::Bert::torch(&torch_rt, &recorded, &prepared).unwrap()[0].settings,
    );
    assert_eq!(
        pairs.get("last_loss"),
        Some(format!("{:.4}", torch[3]).as_str())
    );

    let plain = cell("false");
    let rows = bench_bert::Bert::torch(&torch_rt, &plain, &prepared).unwrap();
    assert_eq!(losses(&rows[0].settings), None);
}
