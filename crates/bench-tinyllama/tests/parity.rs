//! The twins compute the same model: the same weights and tokens give the
//! same logits (and match a float64 reference), the same greedy and
//! sampled sequences, and decoding with the key/value cache gives what
//! recomputing the whole sequence gives.

mod common;

use bench_core::{Precision, Runtime};
use bench_tinyllama::sampler::{Sampler, SamplingConfig};
use bench_tinyllama::{generate, mlx, torch, CausalLm, Logits};
use bench_twin::testing::{assert_close, cpu_runtimes};
use common::{reference_logits, rows, stack, tiny_config, tiny_weights, tokens};
use fw_mlx::MlxRuntime;
use fw_torch::TorchRuntime;

/// Cache positions of the tiny models.
const CAPACITY: usize = 40;

/// MLX vs PyTorch in float32; measured 3.4e-6 (largest logits ~4).
const TWIN_TOLERANCE: f32 = 1e-4;
/// Either twin vs the float64 reference; measured 3.1e-6 (MLX), 3.5e-6 (PyTorch).
const REFERENCE_TOLERANCE: f32 = 1e-4;

fn twins(precision: Precision) -> (MlxRuntime, mlx::Llama, TorchRuntime, torch::Llama) {
    let (config, weights) = (tiny_config(), tiny_weights());
    let (mlx_rt, torch_rt) = cpu_runtimes(precision, 1);
    let mlx_model = mlx::Llama::new(
        &mlx_rt,
        &config,
        &weights,
        CAPACITY,
        bench_core::Execution::Best,
    )
    .unwrap();
    let torch_model = torch::Llama::new(
        &torch_rt,
        &config,
        &weights,
        CAPACITY,
        bench_core::Execution::Best,
    )
    .unwrap();
    (mlx_rt, mlx_model, torch_rt, torch_model)
}

#[test]
fn float32_logits_match_each_other_and_a_float64_reference() {
    let (_, mut mlx_model, _, mut torch_model) = twins(Precision::F32);
    let prompt = tokens(12);
    let mlx_logits = mlx_model.forward(&prompt, Logits::All).unwrap();
    let torch_logits = torch_model.forward(&prompt, Logits::All).unwrap();
    let reference = reference_logits(&tiny_config(), &tiny_weights(), &prompt);
    assert_eq!(mlx_logits.shape, [12, 1000]);
    // The logits are not trivially small: the tolerance means something.
    let spread = reference.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(spread > 1.0, "largest logit {spread}");
    let twins = assert_close("MLX vs PyTorch", &mlx_logits, &torch_logits, TWIN_TOLERANCE);
    let mlx_ref = assert_close(
        "MLX vs reference",
        &mlx_logits,
        &reference,
        REFERENCE_TOLERANCE,
    );
    let torch_ref = assert_close(
        "PyTorch vs reference",
        &torch_logits,
        &reference,
        REFERENCE_TOLERANCE,
    );
    eprintln!("max |diff|: twins {twins:e}, MLX-ref {mlx_ref:e}, PyTorch-ref {torch_ref:e}");
    // The last-position logits are the last row of all of them.
    mlx_model.reset();
    let last = mlx_model.forward(&prompt, Logits::Last).unwrap();
    assert_close("MLX last row", &last, &rows(&mlx_logits, 11..12), 1e-5);
}

#[test]
fn cached_decoding_equals_full_recomputation() {
    let (_, mut mlx_model, _, mut torch_model) = twins(Precision::F32);
    let sequence = tokens(16);
    let models: [(&str, &mut dyn CausalLm); 2] =
        [("MLX", &mut mlx_model), ("PyTorch", &mut torch_model)];
    for (name, model) in models {
        let full = model.forward(&sequence, Logits::All).unwrap();
        model.reset();
        let mut stepwise = vec![model.forward(&sequence[..5], Logits::All).unwrap()];
        for &token in &sequence[5..] {
            stepwise.push(model.forward(&[token], Logits::Last).unwrap());
        }
        assert_eq!(model.position(), 16);
        // measured 2.4e-6 (MLX), 4.6e-6 (PyTorch)
        let diff = assert_close(name, &stack(&stepwise), &full, 2e-5);
        eprintln!("{name}: cached vs recomputed max |diff| {diff:e}");
        // Several tokens after cached ones: the explicit-mask path.
        model.reset();
        let chunks = [
            model.forward(&sequence[..6], Logits::All).unwrap(),
            model.forward(&sequence[6..11], Logits::All).unwrap(),
            model.forward(&sequence[11..], Logits::All).unwrap(),
        ];
        assert_close(&format!("{name} chunked"), &stack(&chunks), &full, 2e-5);
    }
}

#[test]
fn greedy_generation_gives_identical_sequences() {
    let (mlx_rt, mut mlx_model, torch_rt, mut torch_model) = twins(Precision::F32);
    let prompt = tokens(8);
    let greedy = SamplingConfig::default();
    let (mlx_tokens, _) = generate(
        &mut mlx_model,
        &mlx_rt,
        &prompt,
        16,
        &mut Sampler::new(greedy.clone()),
    )
    .unwrap();
    let (torch_tokens, _) = generate(
        &mut torch_model,
        &torch_rt,
        &prompt,
        16,
        &mut Sampler::new(greedy),
    )
    .unwrap();
    assert_eq!(mlx_tokens.len(), 17);
    assert_eq!(mlx_tokens, torch_tokens);
    // Greedy from the cache is the argmax of the recomputed logits.
    let mut sequence = prompt.clone();
    sequence.extend(&mlx_tokens[..16]);
    let reference = reference_logits(&tiny_config(), &tiny_weights(), &sequence);
    let expected: Vec<u32> = (prompt.len() - 1..sequence.len())
        .map(|row| bench_tinyllama::sampler::argmax(&rows(&reference, row..row + 1).data))
        .collect();
    assert_eq!(mlx_tokens, expected);
}

#[test]
fn device_greedy_decoding_equals_host_argmax() {
    let (_, mut mlx_model, _, mut torch_model) = twins(Precision::F32);
    let prompt = tokens(8);
    let models: [(&str, &mut dyn CausalLm); 2] =
        [("MLX", &mut mlx_model), ("PyTorch", &mut torch_model)];
    for (name, model) in models {
        // Host loop: read each step's logits, argmax on the host.
        model.reset();
        let logits = model.forward(&prompt, Logits::Last).unwrap();
        let first = bench_tinyllama::sampler::argmax(&logits.data);
        let mut host = vec![first];
        for _ in 0..12 {
            let logits = model
                .forward(&[*host.last().unwrap()], Logits::Last)
                .unwrap();
            host.push(bench_tinyllama::sampler::argmax(&logits.data));
        }
        // Device loop from the same first token and cache state.
        model.truncate(prompt.len());
        let device = model.decode_greedy(first, 12).unwrap();
        assert_eq!(device, host[1..], "{name}");
        assert_eq!(model.position(), prompt.len() + 12, "{name}");
        // A device loop that would overflow the cache is refused.
        let error = model.decode_greedy(first, CAPACITY).unwrap_err();
        assert!(error.to_string().contains("overflow"), "{name}: {error}");
    }
}

#[test]
fn seeded_sampling_gives_identical_sequences() {
    let (mlx_rt, mut mlx_model, torch_rt, mut torch_model) = twins(Precision::F32);
    let prompt = tokens(8);
    let config = SamplingConfig {
        temperature: 0.7,
        top_p: 0.9,
        seed: 3,
    };
    let run = |model: &mut dyn CausalLm, runtime: &dyn Runtime| {
        generate(
            model,
            runtime,
            &prompt,
            16,
            &mut Sampler::new(config.clone()),
        )
        .unwrap()
        .0
    };
    let mlx_tokens = run(&mut mlx_model, &mlx_rt);
    assert_eq!(mlx_tokens, run(&mut torch_model, &torch_rt));
    // Repeatable, and not the greedy sequence.
    assert_eq!(mlx_tokens, run(&mut mlx_model, &mlx_rt));
    let greedy = generate(
        &mut mlx_model,
        &mlx_rt,
        &prompt,
        16,
        &mut Sampler::new(SamplingConfig::default()),
    )
    .unwrap()
    .0;
    assert_ne!(mlx_tokens, greedy);
}

/// Both twins' logits at a 16-bit `precision` are within `tolerance` of
/// the float32 reference; prints what each measured.
fn assert_tracks_the_reference(precision: Precision, tolerance: f32) {
    let (_, mut mlx_model, _, mut torch_model) = twins(precision);
    let prompt = tokens(12);
    let reference = reference_logits(&tiny_config(), &tiny_weights(), &prompt);
    let mlx_logits = mlx_model.forward(&prompt, Logits::All).unwrap();
    let torch_logits = torch_model.forward(&prompt, Logits::All).unwrap();
    let mlx_ref = assert_close(
        &format!("MLX {precision} vs reference"),
        &mlx_logits,
        &reference,
        tolerance,
    );
    let torch_ref = assert_close(
        &format!("PyTorch {precision} vs reference"),
        &torch_logits,
        &reference,
        tolerance,
    );
    eprintln!("{precision} max |diff| vs reference: MLX {mlx_ref}, PyTorch {torch_ref}");
}

#[test]
fn bfloat16_twins_track_the_float32_reference() {
    // bfloat16 keeps 8 bits of mantissa: logits of size ~4 move by about
    // a tenth through two layers (measured 0.11 MLX, 0.08 PyTorch); a
    // wrong computation moves them by whole units.
    assert_tracks_the_reference(Precision::Bf16, 0.25);
}

/// float16, as mlx-lm and PyTorch users on a Mac run inference.
#[test]
fn float16_twins_track_the_float32_reference() {
    // float16 keeps 11 bits of mantissa, 8 times bfloat16's precision
    // (measured 0.012 MLX, 0.011 PyTorch); a wrong computation (a dtype
    // that overflowed, a cast lost) moves logits by whole units.
    assert_tracks_the_reference(Precision::F16, 0.1);
}

#[test]
fn overflowing_the_cache_is_an_error() {
    let (_, mut mlx_model, _, mut torch_model) = twins(Precision::F32);
    let models: [&mut dyn CausalLm; 2] = [&mut mlx_model, &mut torch_model];
    for model in models {
        model.forward(&tokens(CAPACITY - 1), Logits::Last).unwrap();
        let error = model.forward(&tokens(2), Logits::Last).unwrap_err();
        assert!(error.to_string().contains("overflow"), "{error}");
        let error = model.forward(&[5000], Logits::Last).unwrap_err();
        assert!(error.to_string().contains("5000"), "{error}");
    }
}

#[test]
fn eager_and_best_modes_choose_the_same_tokens() {
    let (config, weights) = (tiny_config(), tiny_weights());
    let (mlx_rt, torch_rt) = cpu_runtimes(Precision::F32, 1);
    let prompt = tokens(8);
    let decode = |model: &mut dyn CausalLm| {
        model.reset();
        let logits = model.forward(&prompt, Logits::Last).unwrap();
        let first = bench_tinyllama::sampler::argmax(&logits.data);
        // Twice: the second call replays what the first set up (a CUDA
        // graph where there is one).
        let once = model.decode_greedy(first, 12).unwrap();
        model.truncate(prompt.len());
        let again = model.decode_greedy(first, 12).unwrap();
        assert_eq!(once, again, "{}", model.execution());
        once
    };
    let mut tokens_by_mode = Vec::new();
    for execution in [bench_core::Execution::Best, bench_core::Execution::Eager] {
        let mut torch_model =
            torch::Llama::new(&torch_rt, &config, &weights, CAPACITY, execution).unwrap();
        let mut mlx_model =
            mlx::Llama::new(&mlx_rt, &config, &weights, CAPACITY, execution).unwrap();
        // On the CPU neither framework records CUDA graphs.
        assert_eq!(torch_model.execution(), "eager");
        assert_eq!(mlx_model.execution(), "eager");
        tokens_by_mode.push((decode(&mut torch_model), decode(&mut mlx_model)));
    }
    assert_eq!(tokens_by_mode[0], tokens_by_mode[1]);
    assert_eq!(tokens_by_mode[0].0, tokens_by_mode[0].1, "PyTorch vs MLX");
}
