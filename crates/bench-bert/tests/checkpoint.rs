//! The checkpoint reader on small hand-made files: `bert.`-prefixed names
//! with old LayerNorm names load (and both twins agree on them); every
//! missing or mis-shaped tensor is named, with both shapes, in one error;
//! a stored tensor the model does not use is named too.

mod common;

use std::path::{Path, PathBuf};

use bench_bert::{BertConfig, BertWeights, TokenBatch};
use bench_core::host::HostTensor;
use model_hub::WeightTree;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

fn tiny_config() -> BertConfig {
    serde_json::from_str(
        r#"{"vocab_size": 40, "hidden_size": 8, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 16,
            "max_position_embeddings": 16, "type_vocab_size": 2,
            "hidden_act": "gelu", "layer_norm_eps": 1e-12}"#,
    )
    .unwrap()
}

/// A file name in the temporary folder, unique to this process and test.
fn temp_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bench-bert-{}-{name}", std::process::id()))
}

/// Writes float32 tensors (and an int64 `position_ids`, as real
/// checkpoints carry) to a safetensors file.
fn write_checkpoint(path: &Path, tensors: &[(String, HostTensor)]) {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, t)| {
            let data = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), data, t.shape.clone())
        })
        .collect();
    let position_ids: Vec<u8> = (0i64..16).flat_map(|i| i.to_le_bytes()).collect();
    let mut views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(name, data, shape)| {
            (
                name.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    views.push((
        "bert.embeddings.position_ids".into(),
        TensorView::new(Dtype::I64, vec![1, 16], &position_ids).unwrap(),
    ));
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// Every tensor `config` calls for, random, named as a `BertFor*`
/// checkpoint of the original release names them: `bert.` prefix and
/// LayerNorm `gamma`/`beta`.
fn prefixed_tensors(config: &BertConfig) -> Vec<(String, HostTensor)> {
    // The model's own list of what it asks for, from loading nothing.
    let nothing = WeightTree::from_tensors(Default::default(), "nothing");
    BertWeights::load(&nothing, config, 2, 0);
    nothing
        .requested()
        .into_iter()
        .enumerate()
        .map(|(i, request)| {
            let (name, shape) = (request.name, request.shape);
            let name = name
                .replace("LayerNorm.weight", "LayerNorm.gamma")
                .replace("LayerNorm.bias", "LayerNorm.beta");
            let mut t = HostTensor::uniform(shape, i as u64);
            t.data.iter_mut().for_each(|v| *v = (*v - 0.5) * 0.4);
            (format!("bert.{name}"), t)
        })
        .collect()
}

#[test]
fn prefixed_checkpoint_loads_and_twins_agree() {
    let config = tiny_config();
    let path = temp_file("prefixed.safetensors");
    write_checkpoint(&path, &prefixed_tensors(&config));
    let weights = BertWeights::read(&path, &config, 2, 9).unwrap();
    std::fs::remove_file(&path).unwrap();
    let stored = prefixed_tensors(&config);
    let gamma = &stored
        .iter()
        .find(|(n, _)| n == "bert.encoder.layer.1.output.LayerNorm.gamma")
        .unwrap()
        .1;
    assert_eq!(&weights.layers[1].output_norm.weight, gamma);

    let tokens = TokenBatch {
        ids: vec![1, 5, 9, 2, 0, 0, 1, 33, 7, 12, 4, 2],
        type_ids: vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1],
        mask: vec![1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1],
        batch: 2,
        seq_len: 6,
    };
    let (mut mlx_model, mut torch_model) = common::both_models(&config, &weights);
    let diff = mlx_model
        .hidden_states(&tokens)
        .unwrap()
        .max_abs_diff(&torch_model.hidden_states(&tokens).unwrap())
        .unwrap();
    assert!(diff < 1e-5, "tiny model: twins differ by {diff}");
}

/// The error of reading `tensors` as a checkpoint of the tiny config.
fn read_error(file: &str, tensors: &[(String, HostTensor)]) -> String {
    let path = temp_file(file);
    write_checkpoint(&path, tensors);
    let error = format!(
        "{:#}",
        BertWeights::read(&path, &tiny_config(), 2, 0).unwrap_err()
    );
    std::fs::remove_file(&path).unwrap();
    error
}

#[test]
fn mis_shaped_tensors_are_named_with_both_shapes_all_at_once() {
    let mut tensors = prefixed_tensors(&tiny_config());
    let query = "bert.encoder.layer.0.attention.self.query.weight";
    let output = "bert.encoder.layer.1.output.dense.weight";
    tensors.iter_mut().find(|(n, _)| n == query).unwrap().1 = HostTensor::uniform(vec![8, 5], 0);
    tensors.iter_mut().find(|(n, _)| n == output).unwrap().1 = HostTensor::uniform(vec![16, 8], 0);
    let error = read_error("misshaped.safetensors", &tensors);
    assert!(
        error.contains(&format!("tensor {query} has shape [8, 5], expected [8, 8]")),
        "{error}"
    );
    assert!(
        error.contains(&format!(
            "tensor {output} has shape [16, 8], expected [8, 16]"
        )),
        "{error}"
    );
    assert!(error.contains("misshaped.safetensors"), "{error}");
}

#[test]
fn a_tensor_the_model_does_not_use_is_named() {
    let mut tensors = prefixed_tensors(&tiny_config());
    let extra = "bert.encoder.layer.2.output.dense.weight";
    tensors.push((extra.into(), HostTensor::uniform(vec![8, 16], 0)));
    // Pretraining heads are expected, and accepted.
    tensors.push((
        "cls.predictions.bias".into(),
        HostTensor::uniform(vec![40], 0),
    ));
    let error = read_error("extra.safetensors", &tensors);
    assert!(
        error.contains(&format!("tensor {extra} [8, 16] is not used by the model")),
        "{error}"
    );
    assert!(!error.contains("cls.predictions"), "{error}");
}

#[test]
fn missing_tensor_is_named_with_its_shape() {
    let mut tensors = prefixed_tensors(&tiny_config());
    tensors.retain(|(n, _)| n != "bert.pooler.dense.bias");
    let error = read_error("missing.safetensors", &tensors);
    assert!(
        error.contains("tensor pooler.dense.bias is missing (expected shape [8])"),
        "{error}"
    );
}

#[test]
fn not_a_safetensors_file_is_named() {
    let path = temp_file("garbage.safetensors");
    std::fs::write(&path, b"not a checkpoint").unwrap();
    let error = format!(
        "{:#}",
        BertWeights::read(&path, &tiny_config(), 2, 0).unwrap_err()
    );
    std::fs::remove_file(&path).unwrap();
    assert!(
        error.contains("garbage.safetensors: not a safetensors file"),
        "{error}"
    );
}
