//! One framework-neutral weight set that both twins load, so that they get
//! identical numbers: float32 host tensors under OpenAI Whisper's names
//! (`encoder.blocks.0.attn.query.weight`, ...). Two readers fill it: Hugging
//! Face safetensors (separate q/k/v) and CTranslate2 (fused q/k/v, split
//! here). Key projections have no bias, as in OpenAI's model; the output
//! projection is the token embedding (tied), as in every Whisper.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use bench_core::host::HostTensor;

use crate::config::ModelDims;
use crate::ct2::Ct2Model;

#[derive(Clone, Debug, Default)]
pub struct WeightSet {
    tensors: BTreeMap<String, HostTensor>,
}

impl WeightSet {
    pub fn get(&self, name: &str) -> Result<&HostTensor> {
        self.tensors
            .get(name)
            .with_context(|| format!("the Whisper weight set has no {name}"))
    }

    pub fn insert(&mut self, name: String, tensor: HostTensor) {
        self.tensors.insert(name, tensor);
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Checks that exactly the weights of `dims` are here, with their shapes,
    /// so that the twins never see a surprise; `origin` names the checkpoint.
    pub fn validate(&self, dims: &ModelDims, origin: &str) -> Result<()> {
        let expected = expected_shapes(dims);
        for (name, shape) in &expected {
            let tensor = self
                .tensors
                .get(name)
                .with_context(|| format!("{origin}: missing weight {name} (shape {shape:?})"))?;
            ensure!(
                &tensor.shape == shape,
                "{origin}: weight {name} has shape {:?}, expected {shape:?}",
                tensor.shape
            );
        }
        if let Some(extra) = self.tensors.keys().find(|k| !expected.contains_key(*k)) {
            bail!("{origin}: unexpected weight {extra}");
        }
        Ok(())
    }
}

/// Every weight of a Whisper with these dimensions, and its shape.
pub fn expected_shapes(dims: &ModelDims) -> BTreeMap<String, Vec<usize>> {
    let mut shapes = BTreeMap::new();
    let mut add = |name: String, shape: Vec<usize>| {
        shapes.insert(name, shape);
    };
    let (a, t) = (dims.n_audio_state, dims.n_text_state);
    add("encoder.conv1.weight".into(), vec![a, dims.n_mels, 3]);
    add("encoder.conv1.bias".into(), vec![a]);
    add("encoder.conv2.weight".into(), vec![a, a, 3]);
    add("encoder.conv2.bias".into(), vec![a]);
    add(
        "encoder.positional_embedding".into(),
        vec![dims.n_audio_ctx, a],
    );
    for i in 0..dims.n_audio_layer {
        let block = format!("encoder.blocks.{i}");
        for (name, shape) in attention_block_shapes(&format!("{block}.attn"), a) {
            add(name, shape);
        }
        for (name, shape) in norm_and_mlp_shapes(&block, a) {
            add(name, shape);
        }
    }
    add("encoder.ln_post.weight".into(), vec![a]);
    add("encoder.ln_post.bias".into(), vec![a]);
    add("decoder.token_embedding".into(), vec![dims.n_vocab, t]);
    add(
        "decoder.positional_embedding".into(),
        vec![dims.n_text_ctx, t],
    );
    for i in 0..dims.n_text_layer {
        let block = format!("decoder.blocks.{i}");
        for attn in ["attn", "cross_attn"] {
            for (name, shape) in attention_block_shapes(&format!("{block}.{attn}"), t) {
                add(name, shape);
            }
        }
        for (name, shape) in norm_and_mlp_shapes(&block, t) {
            add(name, shape);
        }
        add(format!("{block}.cross_attn_ln.weight"), vec![t]);
        add(format!("{block}.cross_attn_ln.bias"), vec![t]);
    }
    add("decoder.ln.weight".into(), vec![t]);
    add("decoder.ln.bias".into(), vec![t]);
    shapes
}

fn attention_block_shapes(prefix: &str, n: usize) -> Vec<(String, Vec<usize>)> {
    vec![
        (format!("{prefix}.query.weight"), vec![n, n]),
        (format!("{prefix}.query.bias"), vec![n]),
        (format!("{prefix}.key.weight"), vec![n, n]),
        (format!("{prefix}.value.weight"), vec![n, n]),
        (format!("{prefix}.value.bias"), vec![n]),
        (format!("{prefix}.out.weight"), vec![n, n]),
        (format!("{prefix}.out.bias"), vec![n]),
    ]
}

fn norm_and_mlp_shapes(block: &str, n: usize) -> Vec<(String, Vec<usize>)> {
    vec![
        (format!("{block}.attn_ln.weight"), vec![n]),
        (format!("{block}.attn_ln.bias"), vec![n]),
        (format!("{block}.mlp_ln.weight"), vec![n]),
        (format!("{block}.mlp_ln.bias"), vec![n]),
        (format!("{block}.mlp1.weight"), vec![4 * n, n]),
        (format!("{block}.mlp1.bias"), vec![4 * n]),
        (format!("{block}.mlp2.weight"), vec![n, 4 * n]),
        (format!("{block}.mlp2.bias"), vec![n]),
    ]
}

/// The Hugging Face name (without the `model.` prefix) of each weight.
fn hf_name(name: &str) -> String {
    let renames = [
        (
            "encoder.positional_embedding",
            "encoder.embed_positions.weight",
        ),
        (
            "decoder.positional_embedding",
            "decoder.embed_positions.weight",
        ),
        ("decoder.token_embedding", "decoder.embed_tokens.weight"),
        (".blocks.", ".layers."),
        (".cross_attn_ln.", ".encoder_attn_layer_norm."),
        (".cross_attn.", ".encoder_attn."),
        (".attn_ln.", ".self_attn_layer_norm."),
        (".attn.", ".self_attn."),
        (".query.", ".q_proj."),
        (".key.", ".k_proj."),
        (".value.", ".v_proj."),
        (".out.", ".out_proj."),
        (".mlp_ln.", ".final_layer_norm."),
        (".mlp1.", ".fc1."),
        (".mlp2.", ".fc2."),
        ("encoder.ln_post.", "encoder.layer_norm."),
        ("decoder.ln.", "decoder.layer_norm."),
    ];
    renames
        .iter()
        .fold(name.to_owned(), |name, (from, to)| name.replace(from, to))
}

/// Reads a Hugging Face `model.safetensors` (float32, float16 or bfloat16).
pub fn from_hf_safetensors(path: &Path, dims: &ModelDims) -> Result<WeightSet> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{} is not a safetensors file", path.display()))?;
    let mut weights = WeightSet::default();
    for name in expected_shapes(dims).keys() {
        let short = hf_name(name);
        let long = format!("model.{short}");
        let view = file
            .tensor(&long)
            .or_else(|_| file.tensor(&short))
            .with_context(|| format!("{} has no tensor {long}", path.display()))?;
        let data = model_hub::floats::to_f32(view.dtype(), view.data())
            .with_context(|| format!("{}: tensor {long}", path.display()))?;
        weights.insert(name.clone(), HostTensor::new(view.shape().to_vec(), data)?);
    }
    weights.validate(dims, &path.display().to_string())?;
    Ok(weights)
}

/// Reads a CTranslate2 Whisper model, splitting its fused projections:
/// self-attention `linear_0` is q|k|v stacked by rows, cross-attention
/// `linear_1` is k|v; their key parts carry an all-zero bias, checked here.
pub fn from_ct2(model: &Ct2Model, dims: &ModelDims) -> Result<WeightSet> {
    let mut weights = WeightSet::default();
    let copy = |to: &str, from: &str, weights: &mut WeightSet| -> Result<()> {
        weights.insert(to.to_owned(), model.tensor(from)?);
        Ok(())
    };
    let linear = |to: &str, from: &str, weights: &mut WeightSet| -> Result<()> {
        weights.insert(
            format!("{to}.weight"),
            model.tensor(&format!("{from}/weight"))?,
        );
        weights.insert(format!("{to}.bias"), model.tensor(&format!("{from}/bias"))?);
        Ok(())
    };
    let norm = |to: &str, from: &str, weights: &mut WeightSet| -> Result<()> {
        weights.insert(
            format!("{to}.weight"),
            model.tensor(&format!("{from}/gamma"))?,
        );
        weights.insert(format!("{to}.bias"), model.tensor(&format!("{from}/beta"))?);
        Ok(())
    };
    let fused = |to: &str, parts: &[&str], from: &str, weights: &mut WeightSet| -> Result<()> {
        let weight = model.tensor(&format!("{from}/weight"))?;
        let bias = model.tensor(&format!("{from}/bias"))?;
        let split_weights = split_rows(&weight, parts.len())
            .with_context(|| format!("{}: {from}/weight", model.path.display()))?;
        let split_biases = split_rows(&bias, parts.len())
            .with_context(|| format!("{}: {from}/bias", model.path.display()))?;
        for ((part, w), b) in parts.iter().zip(split_weights).zip(split_biases) {
            weights.insert(format!("{to}.{part}.weight"), w);
            if *part == "key" {
                ensure!(
                    b.data.iter().all(|&x| x == 0.0),
                    "{}: the key bias in {from}/bias is not zero; Whisper's key projection has none",
                    model.path.display()
                );
            } else {
                weights.insert(format!("{to}.{part}.bias"), b);
            }
        }
        Ok(())
    };
    let self_attention = |to: &str, from: &str, weights: &mut WeightSet| -> Result<()> {
        let attention = format!("{from}/self_attention");
        norm(
            &format!("{to}.attn_ln"),
            &format!("{attention}/layer_norm"),
            weights,
        )?;
        fused(
            &format!("{to}.attn"),
            &["query", "key", "value"],
            &format!("{attention}/linear_0"),
            weights,
        )?;
        linear(
            &format!("{to}.attn.out"),
            &format!("{attention}/linear_1"),
            weights,
        )
    };
    let mlp = |to: &str, from: &str, weights: &mut WeightSet| -> Result<()> {
        norm(
            &format!("{to}.mlp_ln"),
            &format!("{from}/ffn/layer_norm"),
            weights,
        )?;
        linear(
            &format!("{to}.mlp1"),
            &format!("{from}/ffn/linear_0"),
            weights,
        )?;
        linear(
            &format!("{to}.mlp2"),
            &format!("{from}/ffn/linear_1"),
            weights,
        )
    };

    linear("encoder.conv1", "encoder/conv1", &mut weights)?;
    linear("encoder.conv2", "encoder/conv2", &mut weights)?;
    copy(
        "encoder.positional_embedding",
        "encoder/position_encodings/encodings",
        &mut weights,
    )?;
    for i in 0..dims.n_audio_layer {
        let (to, from) = (format!("encoder.blocks.{i}"), format!("encoder/layer_{i}"));
        self_attention(&to, &from, &mut weights)?;
        mlp(&to, &from, &mut weights)?;
    }
    norm("encoder.ln_post", "encoder/layer_norm", &mut weights)?;

    copy(
        "decoder.token_embedding",
        "decoder/embeddings/weight",
        &mut weights,
    )?;
    copy(
        "decoder.positional_embedding",
        "decoder/position_encodings/encodings",
        &mut weights,
    )?;
    for i in 0..dims.n_text_layer {
        let (to, from) = (format!("decoder.blocks.{i}"), format!("decoder/layer_{i}"));
        self_attention(&to, &from, &mut weights)?;
        let cross = format!("{from}/attention");
        norm(
            &format!("{to}.cross_attn_ln"),
            &format!("{cross}/layer_norm"),
            &mut weights,
        )?;
        linear(
            &format!("{to}.cross_attn.query"),
            &format!("{cross}/linear_0"),
            &mut weights,
        )?;
        fused(
            &format!("{to}.cross_attn"),
            &["key", "value"],
            &format!("{cross}/linear_1"),
            &mut weights,
        )?;
        linear(
            &format!("{to}.cross_attn.out"),
            &format!("{cross}/linear_2"),
            &mut weights,
        )?;
        mlp(&to, &from, &mut weights)?;
    }
    norm("decoder.ln", "decoder/layer_norm", &mut weights)?;
    check_tied_projection(model)?;
    weights.validate(dims, &model.path.display().to_string())?;
    Ok(weights)
}

/// The decoder's output projection must be the token embedding (an alias in
/// CTranslate2), since the twins compute logits with the embedding.
fn check_tied_projection(model: &Ct2Model) -> Result<()> {
    let projection = "decoder/projection/weight";
    match model.aliases.get(projection) {
        Some(target) if target == "decoder/embeddings/weight" => Ok(()),
        None if !model.variables.contains_key(projection) => Ok(()),
        _ => {
            let projection = model.tensor(projection)?;
            let embedding = model.tensor("decoder/embeddings/weight")?;
            ensure!(
                projection == embedding,
                "{}: decoder/projection/weight differs from the token embedding; Whisper ties them",
                model.path.display()
            );
            Ok(())
        }
    }
}

/// Splits a tensor into `parts` equal blocks of rows (the first axis).
fn split_rows(tensor: &HostTensor, parts: usize) -> Result<Vec<HostTensor>> {
    let rows = tensor.shape[0];
    ensure!(
        rows % parts == 0,
        "{rows} rows do not split into {parts} equal parts"
    );
    let mut shape = tensor.shape.clone();
    shape[0] = rows / parts;
    let block: usize = shape.iter().product();
    tensor
        .data
        .chunks_exact(block)
        .map(|chunk| HostTensor::new(shape.clone(), chunk.to_vec()))
        .collect()
}

/// OpenAI's sinusoidal position table: `length` rows of sin | cos over
/// `channels / 2` log-spaced timescales up to 10000.
pub fn sinusoids(length: usize, channels: usize) -> HostTensor {
    let half = channels / 2;
    let increment = (10000f64).ln() / (half as f64 - 1.0);
    let mut data = Vec::with_capacity(length * channels);
    for position in 0..length {
        let angles: Vec<f64> = (0..half)
            .map(|i| position as f64 * (-increment * i as f64).exp())
            .collect();
        data.extend(angles.iter().map(|a| a.sin() as f32));
        data.extend(angles.iter().map(|a| a.cos() as f32));
    }
    HostTensor {
        shape: vec![length, channels],
        data,
    }
}
