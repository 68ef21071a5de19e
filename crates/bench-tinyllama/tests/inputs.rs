//! Bad inputs give errors that name the file, the field or tensor, and the
//! expected and actual shapes; good ones load. Also the prompt and the
//! built-in TinyLlama config.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use bench_core::{DeviceKind, Precision};
use bench_tinyllama::config::{LlamaConfig, TINYLLAMA_CONFIG_JSON};
use bench_tinyllama::tokenizer::LlamaTokenizer;
use bench_tinyllama::weights::LlamaWeights;
use bench_tinyllama::workload::{build_prompt, ZEPHYR_TEMPLATE};
use bench_tinyllama::{mlx, torch, CausalLm, Logits};
use common::{tiny_config, tiny_weights, tokens};
use model_hub::{Init, SafetensorsFiles, TensorSource, WeightTree};
use safetensors::tensor::{Dtype, TensorView};

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bench-tinyllama-{}-{name}", std::process::id()))
}

#[test]
fn the_built_in_config_is_tinyllama() {
    let config = LlamaConfig::tinyllama();
    assert_eq!(config.num_layers, 22);
    assert_eq!(config.hidden_size, 2048);
    assert_eq!(config.intermediate_size, 5632);
    assert_eq!((config.num_heads, config.num_kv_heads), (32, 4));
    assert_eq!(config.vocab_size, 32_000);
    assert_eq!(config.rms_norm_eps, 1e-5);
    assert_eq!(config.rope_theta, 10_000.0);
    assert_eq!(config.max_position_embeddings, 2048);
    assert!(!config.tie_word_embeddings);
    assert_eq!(config.parameter_count(), 1_100_048_384);
    // One row of the embedding table is read per token; the rest all are.
    assert_eq!(
        config.weight_elements_per_token(),
        1_100_048_384 - 32_000 * 2048 + 2048
    );
}

#[test]
fn config_errors_name_the_problem() {
    let edit = |from: &str, to: &str| {
        let text = TINYLLAMA_CONFIG_JSON.replace(from, to);
        assert_ne!(text, TINYLLAMA_CONFIG_JSON, "{from} is in the config");
        format!(
            "{:#}",
            LlamaConfig::from_json(&text, "edited config.json").unwrap_err()
        )
    };
    let missing = edit("\"hidden_size\": 2048,", "");
    assert!(missing.contains("edited config.json"), "{missing}");
    assert!(missing.contains("hidden_size"), "{missing}");
    let gqa = edit("\"num_key_value_heads\": 4", "\"num_key_value_heads\": 5");
    assert!(gqa.contains("num_key_value_heads (5)"), "{gqa}");
    let scaling = edit(
        "\"rope_scaling\": null",
        "\"rope_scaling\": {\"type\": \"linear\"}",
    );
    assert!(scaling.contains("rope_scaling"), "{scaling}");
    let other = edit("\"model_type\": \"llama\"", "\"model_type\": \"gpt2\"");
    assert!(other.contains("gpt2"), "{other}");
    let missing_file = LlamaConfig::from_file(&temp_path("absent.json")).unwrap_err();
    assert!(format!("{missing_file:#}").contains("absent.json"));
    // Optional fields take Llama's defaults.
    let minimal = TINYLLAMA_CONFIG_JSON
        .replace("\"num_key_value_heads\": 4,", "")
        .replace("\"rope_theta\": 10000.0,", "");
    let config = LlamaConfig::from_json(&minimal, "minimal").unwrap();
    assert_eq!((config.num_kv_heads, config.rope_theta), (32, 10_000.0));
}

/// The tiny model's weights written as a safetensors file (bfloat16, as
/// Hub checkpoints are), with `edit` applied to the tensor table first.
fn write_checkpoint(
    name: &str,
    edit: impl FnOnce(&mut HashMap<String, (Vec<usize>, Vec<u8>)>),
) -> PathBuf {
    // The model's own list of what it asks for, from loading it once.
    let tree = WeightTree::new(tiny_weights());
    LlamaWeights::load(&tree, &tiny_config(), |_| Ok(())).unwrap();
    let mut tensors: HashMap<String, (Vec<usize>, Vec<u8>)> = tree
        .requested()
        .into_iter()
        .map(|request| {
            let values = tiny_weights()
                .read(&request.name, &request.shape, request.init)
                .unwrap();
            let bytes = values
                .data
                .iter()
                .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                .collect();
            (request.name, (request.shape, bytes))
        })
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, (shape, bytes))| {
            (
                name.clone(),
                TensorView::new(Dtype::BF16, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    let path = temp_path(name);
    safetensors::serialize_to_file(views, None, &path).unwrap();
    path
}

#[test]
fn a_safetensors_checkpoint_loads_into_both_twins() {
    let path = write_checkpoint("good.safetensors", |_| {});
    let weights = SafetensorsFiles::open(std::slice::from_ref(&path), "test checkpoint").unwrap();
    let config = tiny_config();
    let mlx_rt = fw_mlx::MlxRuntime::new(DeviceKind::Cpu, Precision::F32, 1).unwrap();
    let torch_rt = fw_torch::TorchRuntime::new(DeviceKind::Cpu, Precision::F32, 1).unwrap();
    let mut mlx_model =
        mlx::Llama::new(&mlx_rt, &config, &weights, 16, bench_core::Execution::Best).unwrap();
    let mut torch_model = torch::Llama::new(
        &torch_rt,
        &config,
        &weights,
        16,
        bench_core::Execution::Best,
    )
    .unwrap();
    let a = mlx_model.forward(&tokens(6), Logits::All).unwrap();
    let b = torch_model.forward(&tokens(6), Logits::All).unwrap();
    assert!(a.max_abs_diff(&b).unwrap() < 1e-4);
    // The file holds the random weights rounded to bfloat16.
    let (name, shape) = ("model.layers.0.self_attn.q_proj.weight", [64, 64]);
    let stored = weights.read(name, &shape, Init::Normal).unwrap();
    let random = tiny_weights().read(name, &shape, Init::Normal).unwrap();
    assert_eq!(stored.shape, random.shape);
    assert!(stored.max_abs_diff(&random).unwrap() < 2e-3);
    assert!(stored
        .data
        .iter()
        .all(|&v| half::bf16::from_f32(v).to_f32() == v));
    std::fs::remove_file(&path).unwrap();
    let error = LlamaWeights::from_source(&weights, &config, Ok)
        .err()
        .unwrap();
    assert!(
        format!("{error:#}").contains("good.safetensors"),
        "{error:#}"
    );
}

#[test]
fn missing_and_misshaped_tensors_are_named() {
    let config = tiny_config();
    let path = write_checkpoint("broken.safetensors", |tensors| {
        tensors.remove("model.layers.1.mlp.up_proj.weight");
        let (shape, _) = tensors
            .get_mut("model.layers.0.self_attn.k_proj.weight")
            .unwrap();
        // 32 x 64 elements either way: only the shape is wrong.
        *shape = vec![64, 32];
    });
    let weights = SafetensorsFiles::open(std::slice::from_ref(&path), "test checkpoint").unwrap();
    // One error names both problems, with the file's origin.
    let error = format!(
        "{:#}",
        LlamaWeights::from_source(&weights, &config, Ok)
            .err()
            .unwrap()
    );
    assert!(
        error.contains(
            "model.layers.0.self_attn.k_proj.weight has shape [64, 32], expected [32, 64]"
        ),
        "{error}"
    );
    assert!(
        error.contains(
            "tensor model.layers.1.mlp.up_proj.weight is missing (expected shape [172, 64])"
        ),
        "{error}"
    );
    assert!(error.contains("test checkpoint"), "{error}");
    // A twin reports the bad tensors instead of panicking.
    let torch_rt = fw_torch::TorchRuntime::new(DeviceKind::Cpu, Precision::F32, 1).unwrap();
    let error = torch::Llama::new(
        &torch_rt,
        &config,
        &weights,
        16,
        bench_core::Execution::Best,
    )
    .err()
    .unwrap();
    assert!(error.to_string().contains("k_proj"), "{error}");
    std::fs::remove_file(&path).unwrap();
    let gone = SafetensorsFiles::open(std::slice::from_ref(&path), "test").unwrap_err();
    assert!(
        format!("{gone:#}").contains("broken.safetensors"),
        "{gone:#}"
    );
}

#[test]
fn prompts_have_the_exact_length_asked() {
    let tokenizer = LlamaTokenizer::offline().unwrap();
    for length in [1, 7, 128, 512] {
        let plain = build_prompt(&tokenizer, None, length).unwrap();
        assert_eq!(plain.len(), length);
        assert_eq!(plain[0], 1, "starts with <s>");
        let chat = build_prompt(&tokenizer, Some(&ZEPHYR_TEMPLATE), length.max(20)).unwrap();
        assert_eq!(chat.len(), length.max(20));
        let text = tokenizer.decode(&chat).unwrap();
        assert!(text.starts_with("<|user|>\nThe history"), "{text:?}");
        assert!(text.ends_with("\n<|assistant|>\n"), "{text:?}");
    }
    assert!(build_prompt(&tokenizer, Some(&ZEPHYR_TEMPLATE), 5).is_err());
}

fn cell(options: &[(&str, &str)]) -> bench_core::Cell {
    bench_core::Cell {
        framework: bench_core::Framework::Torch,
        device: DeviceKind::Cpu,
        precision: Precision::F32,
        preset: bench_core::Preset::Quick,
        execution: bench_core::Execution::Best,
        threads: 1,
        measure: bench_core::MeasureSettings::default(),
        seed: 7,
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        knobs: &bench_tinyllama::workload::KNOBS,
    }
}

#[test]
fn rows_say_where_the_weights_came_from_and_the_knobs_apply() {
    let workload = bench_tinyllama::Workload::for_cell(&cell(&[
        ("weights", "random"),
        ("prompt_tokens", "24"),
        ("gen_tokens", "5"),
        ("temperature", "0.7"),
        ("top_p", "0.9"),
        ("sample_seed", "4"),
    ]))
    .unwrap();
    assert_eq!(workload.prompt.len(), 24);
    assert_eq!(workload.generation.cache_positions(), 29);
    assert_eq!(workload.config, LlamaConfig::tinyllama());
    let settings = bench_core::settings::Pairs::from(&workload.settings());
    assert_eq!(settings.get("weights"), Some("random weights (seed 7)"));
    assert_eq!(
        settings.get("sampling"),
        Some("temperature 0.7 top_p 0.9 seed 4")
    );
    assert_eq!(settings.get("eos"), Some("ignored"));
    let error = bench_tinyllama::Workload::for_cell(&cell(&[("weights", "lots")]))
        .err()
        .unwrap();
    assert!(error.to_string().contains("weights=lots"), "{error}");
    let error =
        bench_tinyllama::Workload::for_cell(&cell(&[("weights", "random"), ("top_p", "2")]))
            .err()
            .unwrap();
    assert!(error.to_string().contains("top_p"), "{error}");
}

#[test]
fn the_users_own_prompt_is_the_prompt_and_sets_its_length() {
    let text = "Name three rivers; then stop.";
    let workload =
        bench_tinyllama::Workload::for_cell(&cell(&[("weights", "random"), ("prompt", text)]))
            .unwrap();
    assert_eq!(workload.prompt[0], 1, "starts with <s>");
    assert_eq!(workload.generation.prompt_tokens, workload.prompt.len());
    let decoded = workload.tokenizer.decode(&workload.prompt).unwrap();
    assert_eq!(decoded, text);
    let both = [
        ("weights", "random"),
        ("prompt", text),
        ("prompt_tokens", "9"),
    ];
    let error = bench_tinyllama::Workload::for_cell(&cell(&both))
        .err()
        .unwrap();
    assert!(error.to_string().contains("exclude each other"), "{error}");
}

#[test]
fn a_local_model_folder_is_used_as_given_and_missing_files_are_named() {
    let folder = temp_path("local-model");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("config.json"), TINYLLAMA_CONFIG_JSON).unwrap();
    let model = folder.display().to_string();
    // weights=auto (the default) does not swap a folder asked for for random weights.
    let error = bench_tinyllama::Workload::for_cell(&cell(&[("model", &model)]))
        .err()
        .unwrap();
    let text = format!("{error:#}");
    assert!(
        text.contains(&model) && text.contains("has no tokenizer.json"),
        "{text}"
    );
    std::fs::remove_dir_all(&folder).unwrap();
}
