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
//! device's measured copy bandwidth, `ceiling-copy`).
//!
//! Weights: the Hub's TinyLlama-1.1B-Chat-v1.0 safetensors (with its chat
//! template) when online, else seeded random weights of its exact config
//! (rows say `weights=random weights (seed N)`); the Llama-2 tokenizer
//! through `tokenizers`.
//!
//! Greedy by default, each token chosen on the device and fed straight back
//! (no host round trip per token, as llama.cpp and mlx-lm decode); seeded
//! top-p sampling runs on the host, one code for both twins.
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

pub mod bandwidth;
pub mod config;
pub mod generate;
pub mod mlx;
pub mod sampler;
pub mod tokenizer;
pub mod torch;
pub mod weights;
pub mod workload;

use anyhow::Result;
use bench_core::{
    measure, CaseResult, Cell, DeviceKind, Execution, MeasureSettings, Precision, Preset, Runtime,
    Settings, Summary, Throughput,
};
use bench_twin::{MlxRuntime, TorchRuntime, TwinBenchmark};

use crate::bandwidth::{CudaMemcpy, HostScale};

pub use config::LlamaConfig;
pub use generate::{generate, CausalLm, GenerationTimes, Logits};
pub use sampler::{Sampler, SamplingConfig};
pub use workload::{GenerationConfig, Workload};

/// What each framework's twin provides (`mlx::Llama`, `torch::Llama`): a
/// model that generates through [`CausalLm`], built (untimed) from the
/// cell's one weight source, and the framework's own copy kernel.
pub trait LlamaTwin: CausalLm + Sized {
    type Runtime: Runtime;
    /// The model of `workload` with its cache preallocated.
    fn build(runtime: &Self::Runtime, workload: &Workload, execution: Execution) -> Result<Self>;
    /// The framework's y = 2x over `elements` (the copy ceiling where no
    /// framework-neutral copy exists).
    fn framework_copy(runtime: &Self::Runtime, elements: usize) -> Result<FrameworkCopy>;
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

/// The framework's own y = 2x kernel: the copy ceiling on an accelerator
/// without a framework-neutral copy (Metal). One pass, and the bytes it
/// reads and writes.
pub struct FrameworkCopy {
    pub run: Box<dyn Fn() -> Result<()>>,
    pub bytes: f64,
}

/// The same steps for either twin: build its model (untimed), time the
/// generations, drop the model, then measure the copy bandwidth.
fn measure_twin<T: LlamaTwin>(
    runtime: &T::Runtime,
    cell: &Cell,
    workload: &Workload,
) -> Result<Vec<CaseResult>> {
    let mut model = T::build(runtime, workload, cell.execution)?;
    let execution = model.execution();
    let generation = measure_generation(&mut model, runtime, cell, workload)?;
    drop(model);
    let elements = workload.generation.copy_elements;
    let copy = match cell.device {
        DeviceKind::Cpu => {
            let mut scale = HostScale::new(elements, cell.threads);
            let samples = measure(&copy_settings(), runtime, || {
                scale.run();
                Ok(())
            })?;
            std::hint::black_box(scale.probe(elements / 2));
            CopyCeiling {
                samples,
                bytes: scale.bytes(),
                kernel: "y=2x, float32, host threads (framework-neutral)",
                peak_memory_bytes: None,
            }
        }
        DeviceKind::Gpu => match CudaMemcpy::new(elements * 4) {
            Ok(copy) => CopyCeiling {
                samples: measure(&copy_settings(), runtime, || copy.run())?,
                bytes: copy.bytes(),
                kernel: "cudaMemcpy device to device, float32-sized buffers (framework-neutral)",
                peak_memory_bytes: None,
            },
            // Metal: no framework-neutral copy here; the twin's own.
            Err(_) => {
                let scale = T::framework_copy(runtime, elements)?;
                runtime.reset_peak_memory();
                let samples = measure(&copy_settings(), runtime, || (scale.run)())?;
                CopyCeiling {
                    samples,
                    bytes: scale.bytes,
                    kernel: "y=2x through the framework on the device",
                    peak_memory_bytes: runtime.peak_memory_bytes(),
                }
            }
        },
    };
    describe_cases(workload, cell.precision, execution, generation, copy)
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

/// The y = 2x probe is short: more repetitions, a small budget.
fn copy_settings() -> MeasureSettings {
    MeasureSettings::new(2, 10, 3, 5)
}

/// The device's measured copy bandwidth: on the CPU without either
/// framework (see `bandwidth`), on an accelerator through the twin's own.
struct CopyCeiling {
    samples: Vec<f64>,
    /// Bytes read plus bytes written by one pass.
    bytes: f64,
    kernel: &'static str,
    peak_memory_bytes: Option<u64>,
}

/// The cases of a cell: "prompt", "generate" (the headline), "ttft" and
/// "ceiling-copy", each with its figures in the settings.
fn describe_cases(
    workload: &Workload,
    precision: Precision,
    execution: &str,
    runs: GenerationRuns,
    copy: CopyCeiling,
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

    let copy_gbps = copy.bytes / Summary::of(&copy.samples)?.median / 1e9;
    let weight_bytes =
        (workload.config.weight_elements_per_token() * precision.element_bytes()) as f64;
    let bound_tokens_per_s = copy_gbps * 1e9 / weight_bytes;
    let gen_tokens_per_s = g.gen_tokens as f64 / Summary::of(&generate.samples)?.median;
    generate.settings.extend(
        Settings::new()
            .with("weight_bytes_per_token", format!("{weight_bytes:.0}"))
            .with("copy_gbps", format!("{copy_gbps:.2}"))
            .with(
                "bandwidth_bound_tokens_per_s",
                format!("{bound_tokens_per_s:.3}"),
            )
            .with(
                "bandwidth_fraction",
                format!("{:.3}", gen_tokens_per_s / bound_tokens_per_s),
            )
            .with(
                "bandwidth_note",
                "weights read per token (KV cache reads left out) against the copy_gbps of ceiling-copy",
            ),
    );
    let ceiling = CaseResult {
        case: "ceiling-copy".into(),
        samples: copy.samples,
        throughput: Some(Throughput {
            work_per_repetition: copy.bytes / 1e9,
            unit: "GB/s".into(),
        }),
        peak_memory_bytes: copy.peak_memory_bytes,
        settings: Settings::new()
            .with("elements", g.copy_elements)
            .with("kernel", copy.kernel)
            .with("bytes", "read+written"),
    };
    Ok(vec![prompt, generate, ttft, ceiling])
}
