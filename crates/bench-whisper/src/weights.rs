//! The model's weights, framework-neutral: float32 host tensors in the
//! structure both twins build their modules from, so that both start from
//! the same numbers. They are loaded once, through a [`WeightTree`], under
//! Hugging Face's names (without the `model.` prefix): each name is written
//! once, below, beside the field it fills and the shape [`ModelDims`]
//! implies for it. Both formats go through that one loader: Hugging Face
//! safetensors as stored, and CTranslate2's `model.bin` once
//! [`ct2_tensors`] has renamed its variables and split its fused
//! projections (the only name mapping). Key projections have no bias, as in
//! OpenAI's model; the output projection is the token embedding (tied), as
//! in every Whisper.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{ensure, Context, Result};
use bench_core::host::HostTensor;
use model_hub::{WeightPath, WeightTree};

use crate::config::ModelDims;
use crate::ct2::Ct2Model;

/// Both convolutions' kernel width.
const CONV_KERNEL: usize = 3;

/// x W^T (+ b), W stored [out, in] as PyTorch stores it.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearWeights {
    pub weight: HostTensor,
    /// None for the key projections, which Whisper trains without a bias.
    pub bias: Option<HostTensor>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LayerNormWeights {
    pub weight: HostTensor,
    pub bias: HostTensor,
}

/// A 1-D convolution: weight [out, in, kernel], as PyTorch stores it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvWeights {
    pub weight: HostTensor,
    pub bias: HostTensor,
}

/// Multi-head attention's projections.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionWeights {
    pub query: LinearWeights,
    /// Without a bias.
    pub key: LinearWeights,
    pub value: LinearWeights,
    pub out: LinearWeights,
}

/// A pre-LayerNorm transformer block; decoder blocks add cross-attention
/// (its LayerNorm and projections).
#[derive(Clone, Debug, PartialEq)]
pub struct BlockWeights {
    pub attn_ln: LayerNormWeights,
    pub attn: AttentionWeights,
    pub cross_attn: Option<(LayerNormWeights, AttentionWeights)>,
    pub mlp_ln: LayerNormWeights,
    pub mlp1: LinearWeights,
    pub mlp2: LinearWeights,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EncoderWeights {
    pub conv1: ConvWeights,
    /// Stride 2: it halves the frames.
    pub conv2: ConvWeights,
    /// [n_audio_ctx, width]: stored, though they are fixed sinusoids.
    pub positions: HostTensor,
    pub blocks: Vec<BlockWeights>,
    pub ln_post: LayerNormWeights,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DecoderWeights {
    /// [n_vocab, width]; also the output projection (tied).
    pub token_embedding: HostTensor,
    /// [n_text_ctx, width], learnt.
    pub positions: HostTensor,
    pub blocks: Vec<BlockWeights>,
    pub ln: LayerNormWeights,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WhisperWeights {
    pub encoder: EncoderWeights,
    pub decoder: DecoderWeights,
}

impl WhisperWeights {
    /// Reads a Hugging Face `model.safetensors` (float32, float16 or
    /// bfloat16; names with or without the `model.` prefix) and checks it
    /// against `dims`: every missing, mis-shaped or unused tensor is named
    /// in one error.
    pub fn read_safetensors(path: &Path, dims: &ModelDims) -> Result<Self> {
        let tree = WeightTree::from_safetensors(path)
            .with_context(|| format!("reading Whisper weights {}", path.display()))?
            .with_names(hugging_face_name)?;
        let weights = Self::load(&tree, dims);
        tree.finish_strict(is_tied_projection)?;
        Ok(weights)
    }

    /// Reads a CTranslate2 Whisper model: its tensors under the loader's
    /// names ([`ct2_tensors`]), then the same loader and checks.
    pub fn from_ct2(model: &Ct2Model, dims: &ModelDims) -> Result<Self> {
        let tensors = ct2_tensors(model, dims)?;
        Self::from_tensors(tensors, &model.path.display().to_string(), dims)
    }

    /// Tensors already in memory under the loader's names; each of them
    /// must be used. `origin` names them in errors.
    pub fn from_tensors(
        tensors: BTreeMap<String, HostTensor>,
        origin: &str,
        dims: &ModelDims,
    ) -> Result<Self> {
        let tree = WeightTree::from_tensors(tensors, origin);
        let weights = Self::load(&tree, dims);
        tree.finish_strict(|_| false)?;
        Ok(weights)
    }

    /// Takes every tensor `dims` calls for from `tree` (Hugging Face names
    /// without the `model.` prefix); a missing or mis-shaped one is left
    /// for the tree's `finish` to report.
    pub fn load(tree: &WeightTree, dims: &ModelDims) -> Self {
        Self {
            encoder: EncoderWeights::load(tree.pp("encoder"), dims),
            decoder: DecoderWeights::load(tree.pp("decoder"), dims),
        }
    }
}

impl EncoderWeights {
    fn load(path: WeightPath, dims: &ModelDims) -> Self {
        let width = dims.n_audio_state;
        let layers = path.pp("layers");
        Self {
            conv1: ConvWeights::load(path.pp("conv1"), dims.n_mels, width),
            conv2: ConvWeights::load(path.pp("conv2"), width, width),
            positions: path
                .pp("embed_positions")
                .get(&[dims.n_audio_ctx, width], "weight"),
            blocks: (0..dims.n_audio_layer)
                .map(|i| BlockWeights::load(layers.pp(i), width, false))
                .collect(),
            ln_post: LayerNormWeights::load(path.pp("layer_norm"), width),
        }
    }
}

impl DecoderWeights {
    fn load(path: WeightPath, dims: &ModelDims) -> Self {
        let width = dims.n_text_state;
        let layers = path.pp("layers");
        Self {
            token_embedding: path
                .pp("embed_tokens")
                .get(&[dims.n_vocab, width], "weight"),
            positions: path
                .pp("embed_positions")
                .get(&[dims.n_text_ctx, width], "weight"),
            blocks: (0..dims.n_text_layer)
                .map(|i| BlockWeights::load(layers.pp(i), width, true))
                .collect(),
            ln: LayerNormWeights::load(path.pp("layer_norm"), width),
        }
    }
}

impl BlockWeights {
    fn load(path: WeightPath, width: usize, cross: bool) -> Self {
        let cross_attn = || {
            (
                LayerNormWeights::load(path.pp("encoder_attn_layer_norm"), width),
                AttentionWeights::load(path.pp("encoder_attn"), width),
            )
        };
        Self {
            attn_ln: LayerNormWeights::load(path.pp("self_attn_layer_norm"), width),
            attn: AttentionWeights::load(path.pp("self_attn"), width),
            cross_attn: cross.then(cross_attn),
            mlp_ln: LayerNormWeights::load(path.pp("final_layer_norm"), width),
            mlp1: LinearWeights::load(path.pp("fc1"), width, 4 * width),
            mlp2: LinearWeights::load(path.pp("fc2"), 4 * width, width),
        }
    }
}

impl AttentionWeights {
    fn load(path: WeightPath, width: usize) -> Self {
        Self {
            query: LinearWeights::load(path.pp("q_proj"), width, width),
            key: LinearWeights::without_bias(path.pp("k_proj"), width, width),
            value: LinearWeights::load(path.pp("v_proj"), width, width),
            out: LinearWeights::load(path.pp("out_proj"), width, width),
        }
    }
}

impl LinearWeights {
    fn load(path: WeightPath, input: usize, output: usize) -> Self {
        Self {
            bias: Some(path.get(&[output], "bias")),
            ..Self::without_bias(path, input, output)
        }
    }

    fn without_bias(path: WeightPath, input: usize, output: usize) -> Self {
        Self {
            weight: path.get(&[output, input], "weight"),
            bias: None,
        }
    }
}

impl LayerNormWeights {
    fn load(path: WeightPath, width: usize) -> Self {
        Self {
            weight: path.get(&[width], "weight"),
            bias: path.get(&[width], "bias"),
        }
    }
}

impl ConvWeights {
    fn load(path: WeightPath, input: usize, output: usize) -> Self {
        Self {
            weight: path.get(&[output, input, CONV_KERNEL], "weight"),
            bias: path.get(&[output], "bias"),
        }
    }
}

/// A stored name as the loader names it: `WhisperForConditionalGeneration`
/// checkpoints prefix every name with `model.`, a bare `WhisperModel` not.
fn hugging_face_name(stored: &str) -> String {
    stored.strip_prefix("model.").unwrap_or(stored).to_owned()
}

/// Some exports store the output projection, which is the token embedding
/// (tied); the twins compute logits with the embedding, so it goes unused.
fn is_tied_projection(name: &str) -> bool {
    name == "proj_out.weight"
}

/// How a group of CTranslate2 variables becomes the loader's tensors.
#[derive(Clone, Copy, Debug)]
enum Conversion {
    /// One tensor, as stored.
    Tensor,
    /// `weight` and `bias`.
    Linear,
    /// `gamma` and `beta` become `weight` and `bias`.
    LayerNorm,
    /// Projections stacked by rows (`weight`, `bias`), split into these
    /// parts; the key part's bias must be zero and is dropped.
    Fused(&'static [&'static str]),
}
use Conversion::{Fused, LayerNorm, Linear, Tensor};

/// The one Hugging Face part name that has no bias.
const KEY_PROJECTION: &str = "k_proj";

/// CTranslate2's name, the loader's name, and the conversion, of the
/// tensors outside the layers.
const CT2_TOP: [(&str, &str, Conversion); 7] = [
    ("encoder/conv1", "encoder.conv1", Linear),
    ("encoder/conv2", "encoder.conv2", Linear),
    (
        "encoder/position_encodings/encodings",
        "encoder.embed_positions.weight",
        Tensor,
    ),
    ("encoder/layer_norm", "encoder.layer_norm", LayerNorm),
    (
        "decoder/embeddings/weight",
        "decoder.embed_tokens.weight",
        Tensor,
    ),
    (
        "decoder/position_encodings/encodings",
        "decoder.embed_positions.weight",
        Tensor,
    ),
    ("decoder/layer_norm", "decoder.layer_norm", LayerNorm),
];

/// The same, within `{encoder,decoder}/layer_{i}`: self-attention (q|k|v
/// fused) and the MLP.
const CT2_LAYER: [(&str, &str, Conversion); 6] = [
    (
        "self_attention/layer_norm",
        "self_attn_layer_norm",
        LayerNorm,
    ),
    (
        "self_attention/linear_0",
        "self_attn",
        Fused(&["q_proj", KEY_PROJECTION, "v_proj"]),
    ),
    ("self_attention/linear_1", "self_attn.out_proj", Linear),
    ("ffn/layer_norm", "final_layer_norm", LayerNorm),
    ("ffn/linear_0", "fc1", Linear),
    ("ffn/linear_1", "fc2", Linear),
];

/// A decoder layer's cross-attention: the query alone, k|v fused.
const CT2_CROSS_ATTENTION: [(&str, &str, Conversion); 4] = [
    ("attention/layer_norm", "encoder_attn_layer_norm", LayerNorm),
    ("attention/linear_0", "encoder_attn.q_proj", Linear),
    (
        "attention/linear_1",
        "encoder_attn",
        Fused(&[KEY_PROJECTION, "v_proj"]),
    ),
    ("attention/linear_2", "encoder_attn.out_proj", Linear),
];

/// A CTranslate2 Whisper's tensors under the loader's names, its fused
/// projections split, once its output projection is found tied to the
/// token embedding. A variable it lacks is named, in CTranslate2's terms.
pub fn ct2_tensors(model: &Ct2Model, dims: &ModelDims) -> Result<BTreeMap<String, HostTensor>> {
    check_tied_projection(model)?;
    let mut tensors = BTreeMap::new();
    for (from, to, conversion) in CT2_TOP {
        conversion.apply(model, from, to, &mut tensors)?;
    }
    let encoder = (0..dims.n_audio_layer).map(|i| ("encoder", i, false));
    let decoder = (0..dims.n_text_layer).map(|i| ("decoder", i, true));
    for (stack, i, cross) in encoder.chain(decoder) {
        let cross_attention = if cross { &CT2_CROSS_ATTENTION[..] } else { &[] };
        for (from, to, conversion) in CT2_LAYER.iter().chain(cross_attention) {
            let from = format!("{stack}/layer_{i}/{from}");
            let to = format!("{stack}.layers.{i}.{to}");
            conversion.apply(model, &from, &to, &mut tensors)?;
        }
    }
    Ok(tensors)
}

impl Conversion {
    /// Adds the tensors of CTranslate2's `from` to `tensors` under `to`.
    fn apply(
        self,
        model: &Ct2Model,
        from: &str,
        to: &str,
        tensors: &mut BTreeMap<String, HostTensor>,
    ) -> Result<()> {
        let pair = |(from_part, to_part): (&str, &str), tensors: &mut BTreeMap<_, _>| {
            let tensor = model.tensor(&format!("{from}/{from_part}"))?;
            tensors.insert(format!("{to}.{to_part}"), tensor);
            anyhow::Ok(())
        };
        match self {
            Tensor => {
                tensors.insert(to.to_owned(), model.tensor(from)?);
            }
            Linear => {
                pair(("weight", "weight"), tensors)?;
                pair(("bias", "bias"), tensors)?;
            }
            LayerNorm => {
                pair(("gamma", "weight"), tensors)?;
                pair(("beta", "bias"), tensors)?;
            }
            Fused(parts) => split_fused(model, from, to, parts, tensors)?,
        }
        Ok(())
    }
}

/// Splits CTranslate2's stacked projections `from` into `parts` below
/// `to`, checking that the key's bias, which Whisper has not, is zero.
fn split_fused(
    model: &Ct2Model,
    from: &str,
    to: &str,
    parts: &[&str],
    tensors: &mut BTreeMap<String, HostTensor>,
) -> Result<()> {
    let path = model.path.display();
    let weight = model.tensor(&format!("{from}/weight"))?;
    let bias = model.tensor(&format!("{from}/bias"))?;
    let weights =
        split_rows(&weight, parts.len()).with_context(|| format!("{path}: {from}/weight"))?;
    let biases = split_rows(&bias, parts.len()).with_context(|| format!("{path}: {from}/bias"))?;
    for ((part, weight), bias) in parts.iter().zip(weights).zip(biases) {
        tensors.insert(format!("{to}.{part}.weight"), weight);
        if *part == KEY_PROJECTION {
            ensure!(
                bias.data.iter().all(|&x| x == 0.0),
                "{path}: the key bias in {from}/bias is not zero; Whisper's key projection has none"
            );
        } else {
            tensors.insert(format!("{to}.{part}.bias"), bias);
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::ct2::{Ct2Dtype, Ct2Variable};

    fn tiny_en_dims() -> ModelDims {
        ModelDims::TINY_EN
    }

    /// A CTranslate2 model in memory holding these float32 variables.
    fn ct2_model(variables: &[(&str, HostTensor)]) -> Ct2Model {
        let variable = |tensor: &HostTensor| Ct2Variable {
            shape: tensor.shape.clone(),
            dtype: Ct2Dtype::F32,
            bytes: tensor.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        };
        Ct2Model {
            path: PathBuf::from("test/model.bin"),
            binary_version: 6,
            spec: "WhisperSpec".into(),
            revision: 3,
            variables: variables
                .iter()
                .map(|(name, tensor)| (name.to_string(), variable(tensor)))
                .collect(),
            aliases: BTreeMap::new(),
        }
    }

    fn tensor(shape: &[usize], data: &[f32]) -> HostTensor {
        HostTensor::new(shape.to_vec(), data.to_vec()).unwrap()
    }

    #[test]
    fn the_loader_asks_for_every_tensor_once_with_its_dims_shape() {
        let tree = WeightTree::from_tensors(BTreeMap::new(), "nothing");
        let weights = WhisperWeights::load(&tree, &tiny_en_dims());
        let requested = tree.requested();
        // encoder: 2 convs (4), positions, final norm (2), 15 per block;
        // decoder: embedding, positions, final norm (2), 24 per block
        assert_eq!(requested.len(), 7 + 4 * 15 + 4 + 4 * 24);
        let shape = |name: &str| {
            let request = requested.iter().find(|r| r.name == name);
            request.unwrap_or_else(|| panic!("{name}")).shape.clone()
        };
        assert_eq!(shape("encoder.conv1.weight"), [384, 80, 3]);
        assert_eq!(shape("encoder.layers.3.fc1.weight"), [1536, 384]);
        assert_eq!(
            shape("decoder.layers.0.encoder_attn.k_proj.weight"),
            [384, 384]
        );
        assert_eq!(shape("decoder.embed_tokens.weight"), [51864, 384]);
        assert!(!requested.iter().any(|r| r.name.ends_with("k_proj.bias")));
        assert!(weights.decoder.blocks[3].cross_attn.is_some());
        assert!(weights.encoder.blocks[3].cross_attn.is_none());
    }

    #[test]
    fn fused_projections_split_by_rows_and_a_nonzero_key_bias_is_an_error() {
        let weight = tensor(&[6, 2], &(0..12).map(|x| x as f32).collect::<Vec<_>>());
        let bias = |key: f32| tensor(&[6], &[1.0, 2.0, 0.0, key, 5.0, 6.0]);
        let fused = Fused(&["q_proj", KEY_PROJECTION, "v_proj"]);
        let model = ct2_model(&[
            ("a/linear_0/weight", weight.clone()),
            ("a/linear_0/bias", bias(0.0)),
        ]);
        let mut tensors = BTreeMap::new();
        fused
            .apply(&model, "a/linear_0", "attn", &mut tensors)
            .unwrap();
        let names: Vec<&str> = tensors.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "attn.k_proj.weight",
                "attn.q_proj.bias",
                "attn.q_proj.weight",
                "attn.v_proj.bias",
                "attn.v_proj.weight"
            ]
        );
        assert_eq!(
            tensors["attn.k_proj.weight"],
            tensor(&[2, 2], &[4.0, 5.0, 6.0, 7.0])
        );
        assert_eq!(tensors["attn.v_proj.bias"], tensor(&[2], &[5.0, 6.0]));

        let model = ct2_model(&[
            ("a/linear_0/weight", weight),
            ("a/linear_0/bias", bias(0.5)),
        ]);
        let error = fused
            .apply(&model, "a/linear_0", "attn", &mut BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("test/model.bin: the key bias in a/linear_0/bias is not zero"),
            "{error}"
        );
    }

    #[test]
    fn an_untied_output_projection_is_an_error() {
        let embedding = tensor(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let mut model = ct2_model(&[
            ("decoder/embeddings/weight", embedding.clone()),
            ("decoder/projection/weight", embedding),
        ]);
        check_tied_projection(&model).unwrap();
        let other = ct2_model(&[("p", tensor(&[2, 2], &[1.0, 2.0, 3.0, 5.0]))]);
        model.variables.insert(
            "decoder/projection/weight".into(),
            other.variables["p"].clone(),
        );
        let error = check_tied_projection(&model).unwrap_err().to_string();
        assert!(
            error.contains("decoder/projection/weight differs from the token embedding"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_ct2_variable_is_named_in_its_own_terms() {
        let error = ct2_tensors(&ct2_model(&[]), &tiny_en_dims())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("has no variable encoder/conv1/weight"),
            "{error}"
        );
    }
}
