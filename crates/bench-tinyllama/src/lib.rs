//! bench-tinyllama: Llama-architecture text generation (TinyLlama 1.1B),
//! measured as llama-bench and mlx_lm.benchmark measure it: a fixed-length
//! prompt in one pass (prompt tokens/s, time to first token), then a fixed
//! number of single-token steps with end-of-sequence ignored (generation
//! tokens/s, also as a fraction of the memory-bandwidth bound).
//!
//! # What it measures
//!
//! Llama text generation as llama-bench and mlx_lm.benchmark measure it:
//! TinyLlama 1.1B (22 layers, hidden 2048, 32 query / 4 key-value heads,
//! RoPE, RMSNorm, SwiGLU) with a preallocated key/value cache, batch 1. A
//! fixed-length prompt in one pass (`prompt`, tokens/s; `ttft`, time to
//! first token), then fixed single-token steps with end-of-sequence ignored
//! (`generate`, tokens/s, the headline; its row also gives
//! `bandwidth_fraction`: weight bytes read per token x tokens/s over the
//! device's copy bandwidth, `ceiling_gbps`). That ceiling is one figure per
//! device and run, measured once by a probe of neither framework
//! (`device-ceiling`: a host memcpy, a CUDA device-to-device copy, a
//! Metal blit) before the run's first cell, so both twins are divided by
//! the same number; a cell run by hand measures that probe in its own
//! process, and its row says so (`ceiling_measured`).
//!
//! Weights: the Hub's TinyLlama-1.1B-Chat-v1.0 safetensors (with its chat
//! template) when online, else seeded random weights of its exact config
//! (rows say `weights=random weights (seed N)`); the Llama-2 tokenizer
//! through `tokenizers`.
//!
//! Greedy by default, each token chosen on the device and fed straight back
//! as the next input. The PyTorch twin reads the tokens back once, after
//! the last step; the MLX twin reads each token one step late, as mlx-lm's
//! `generate_step` does (step n+1 is queued before step n's token is read,
//! so the host waits once per token but the device always has the next
//! step). Seeded top-p sampling runs on the host, one code for both twins.
//!
//! # Presets and knobs
//!
//! - `quick`: prompt 128, generate 32.
//! - `paper`: prompt 512, generate 128 (llama-bench's pp512 / tg128).
//!
//! `--set temperature=0.7 --set top_p=0.9 --set sample_seed=1`,
//! `--set prompt_tokens=... --set gen_tokens=...`,
//! `--set weights=random|hub|auto`, `--set hub_repo=...`,
//! `--set config=<config.json>`.

pub mod config;
pub mod generate;
pub mod mlx;
pub mod sampler;
pub mod tokenizer;
pub mod torch;
pub mod weights;
pub mod workload;

use anyhow::{Context, Result};
use bench_core::{
    measure, CaseResult, Ceiling, Cell, Execution, Precision, Preset, Runtime, Settings, Summary,
    Throughput,
};
use bench_twin::{MlxRuntime, TorchRuntime, TwinBenchmark};

pub use config::LlamaConfig;
pub use generate::{generate, CausalLm, GenerationTimes, Logits};
pub use sampler::{Sampler, SamplingConfig};
pub use workload::{GenerationConfig, Workload};

/// What each framework's twin provides (`mlx::Llama`, `torch::Llama`): a
/// model that generates through [`CausalLm`], built (untimed) from the
/// cell's one weight source.
pub trait LlamaTwin: CausalLm + Sized {
    type Runtime: Runtime;
    /// The model of `workload` with its cache preallocated.
    fn build(runtime: &Self::Runtime, workload: &Workload, execution: Execution) -> Result<Self>;
}

pub struct TinyLlama;

impl TwinBenchmark for TinyLlama {
    const NAME: &'static str = "tinyllama";
    type Work = Workload;

    fn knobs() -> &'static [bench_core::Knob] {
        &workload::KNOBS
    }

    type Sizes = workload::GenerationConfig;

    fn presets(preset: Preset) -> bench_core::PresetRow<Self::Sizes> {
        workload::presets(preset)
    }

    fn prepare(cell: &Cell) -> Result<Workload> {
        Workload::for_cell(cell)
    }

    fn mlx(runtime: &MlxRuntime, cell: &Cell, workload: &Workload) -> Result<Vec<CaseResult>> {
        measure_twin::<mlx::Llama>(runtime, cell, workload)
    }

    fn torch(runtime: &TorchRuntime, cell: &Cell, workload: &Workload) -> Result<Vec<CaseResult>> {
        measure_twin::<torch::Llama>(runtime, cell, workload)
    }
}

/// The same steps for either twin: build its model (untimed), time the
/// generations, drop the model, then take the device's copy ceiling (the
/// run's, or, for a cell run by hand, measured here with the model gone).
fn measure_twin<T: LlamaTwin>(
    runtime: &T::Runtime,
    cell: &Cell,
    workload: &Workload,
) -> Result<Vec<CaseResult>> {
    let mut model = T::build(runtime, workload, cell.execution)?;
    let execution = model.execution();
    let generation = measure_generation(&mut model, runtime, cell, workload)?;
    drop(model);
    let ceiling = device_ceiling::for_cell(cell.device).context("the device's copy ceiling")?;
    describe_cases(workload, cell.precision, execution, generation, &ceiling)
}

/// Every timed generation of a cell, and the allocator's peak during them.
pub struct GenerationRuns {
    pub times: Vec<GenerationTimes>,
    pub peak_memory_bytes: Option<u64>,
    /// The tokens of the last generation (the first token and every step's).
    pub tokens: Vec<u32>,
}

/// Times whole generations through the harness's loop (warm-up,
/// repetitions, time budget, synchronisation), keeping each one's split
/// into prompt processing, first token and generation steps.
pub fn measure_generation(
    model: &mut dyn CausalLm,
    runtime: &dyn Runtime,
    cell: &Cell,
    workload: &Workload,
) -> Result<GenerationRuns> {
    let settings = &workload.generation;
    runtime.reset_peak_memory();
    let mut runs = Vec::new();
    let mut tokens = Vec::new();
    measure(&cell.measure, runtime, || {
        let mut sampler = Sampler::new(settings.sampling.clone());
        let times;
        (tokens, times) = generate(
            model,
            runtime,
            &workload.prompt,
            settings.gen_tokens,
            &mut sampler,
        )?;
        runs.push(times);
        Ok(())
    })?;
    // The harness ran the warm-ups first.
    let times = runs.split_off(cell.measure.warmup.min(runs.len()));
    Ok(GenerationRuns {
        times,
        tokens,
        peak_memory_bytes: runtime.peak_memory_bytes(),
    })
}

/// The cases of a cell: "prompt", "generate" (the headline, with its
/// bandwidth against `ceiling`) and "ttft", each with its figures in the
/// settings.
fn describe_cases(
    workload: &Workload,
    precision: Precision,
    execution: &str,
    runs: GenerationRuns,
    ceiling: &Ceiling,
) -> Result<Vec<CaseResult>> {
    let g = &workload.generation;
    let mut shared = workload.settings().with("execution", execution);
    // What the model chose, so that a reader (and the eager-vs-best check)
    // sees the same tokens from both modes and both twins.
    let first_ids = &runs.tokens[..runs.tokens.len().min(32)];
    let first: Vec<String> = first_ids.iter().map(u32::to_string).collect();
    shared.push("first_tokens", first.join(" "));
    // The same tokens as text: a user sees that the model works (a wrong
    // model or a broken twin writes nonsense), as whisper's transcript.
    shared.push("first_text", workload.tokenizer.decode(first_ids)?);
    let case = |name: &str, samples: Vec<f64>, throughput: Option<Throughput>| CaseResult {
        case: name.to_owned(),
        samples,
        throughput,
        peak_memory_bytes: runs.peak_memory_bytes,
        settings: shared.clone(),
    };
    let tokens = |count: usize| {
        Some(Throughput {
            work_per_repetition: count as f64,
            unit: "tokens/s".into(),
        })
    };
    let prompt = case(
        "prompt",
        runs.times.iter().map(|t| t.prefill_s).collect(),
        tokens(g.prompt_tokens),
    );
    let mut generate = case(
        "generate",
        runs.times.iter().map(|t| t.decode_s).collect(),
        tokens(g.gen_tokens),
    );
    let ttft = case(
        "ttft",
        runs.times.iter().map(|t| t.first_token_s).collect(),
        None,
    );
    let weight_bytes =
        (workload.config.weight_elements_per_token() * precision.element_bytes()) as f64;
    let gen_tokens_per_s = g.gen_tokens as f64 / Summary::of(&generate.samples)?.median;
    generate
        .settings
        .extend(bandwidth_settings(weight_bytes, gen_tokens_per_s, ceiling));
    Ok(vec![prompt, generate, ttft])
}

/// The generation's bandwidth: the weights read per token at
/// `tokens_per_s`, as a fraction of the device's `ceiling` (which the
/// settings record).
pub fn bandwidth_settings(weight_bytes: f64, tokens_per_s: f64, ceiling: &Ceiling) -> Settings {
    let achieved_gbps = weight_bytes * tokens_per_s / 1e9;
    let mut settings = Settings::new()
        .with("weight_bytes_per_token", format!("{weight_bytes:.0}"))
        .with("weight_gbps", format!("{achieved_gbps:.2}"))
        .with(
            "bandwidth_bound_tokens_per_s",
            format!("{:.3}", ceiling.gbps * 1e9 / weight_bytes),
        )
        .with(
            "bandwidth_fraction",
            format!("{:.3}", ceiling.fraction(achieved_gbps)),
        )
        .with(
            "bandwidth_note",
            "weights read per token (KV cache reads left out) x tokens/s, over ceiling_gbps: \
             the device's copy bandwidth, one figure for both twins (see ceiling_measured)",
        );
    settings.extend(ceiling.settings());
    settings
}

#[cfg(test)]
mod tests {
    use bench_core::DeviceKind;

    use super::*;

    #[test]
    fn the_fraction_is_the_weights_bandwidth_over_the_ceiling() {
        let ceiling = Ceiling::of_samples(DeviceKind::Gpu, &[0.001], 4e9, "copy".into()).unwrap();
        assert_eq!(ceiling.gbps, 4000.0);
        // 2.2 GB of weights a token at 500 tokens/s: 1100 GB/s of 4000.
        let settings = bandwidth_settings(2.2e9, 500.0, &ceiling);
        let get = |key: &str| settings.get(key).unwrap().to_string();
        assert_eq!(get("weight_gbps"), "1100.00");
        assert_eq!(get("bandwidth_fraction"), "0.275");
        assert_eq!(get("bandwidth_bound_tokens_per_s"), "1818.182");
        assert_eq!(get("ceiling_gbps"), "4000.00");
        assert_eq!(get("ceiling_probe"), "copy");
    }
}
