//! MLX twin: BERT with a classification head on mlx-rs modules; a
//! training step is `value_and_grad` and AdamW compiled into one graph
//! (`compile_with_state`, as lm-train's and mlx-examples' steps), and one
//! `eval` of the parameters, optimiser state and loss. The parameters and AdamW state are
//! float32; the forward and backward run in the compute dtype (see
//! [`linear`]).

use anyhow::Result;
use bench_core::host::HostTensor;
use bench_core::Execution;
use fw_mlx::{
    from_host, to_host_f32, BiasCorrectedAdamW, CompiledTraining, MlxRuntime, StepScalars,
};
use mlx_rs::builder::Builder;
use mlx_rs::error::Exception;
use mlx_rs::error::StateProjectionError;
use mlx_rs::fast::{self, scaled_dot_product_attention};
use mlx_rs::losses::{CrossEntropyBuilder, LossReduction};
use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::{Module, ModuleParameters as _, Param};
use mlx_rs::nn::{self, Embedding, LayerNorm, Linear};
use mlx_rs::ops::{addmm, matmul};
use mlx_rs::transforms::eval;
use mlx_rs::utils::{StateProjection, Updatable};
use mlx_rs::{array, Array, Dtype};

use crate::config::BertConfig;
use crate::tokens::{LabelledBatch, TokenBatch};
use crate::weights::{
    BertWeights, EmbeddingWeights, LayerNormWeights, LayerWeights, LinearWeights,
};
use crate::workload::OptimizerSettings;
use crate::FineTune;

type MlxResult<T> = std::result::Result<T, Exception>;

/// Token embeddings plus learned positions and token types, normalised.
#[derive(Debug, Clone, ModuleParameters)]
struct Embeddings {
    #[param]
    word: Embedding,
    #[param]
    position: Embedding,
    #[param]
    token_type: Embedding,
    #[param]
    norm: LayerNorm,
}

/// One post-LN encoder layer: x = LN(x + attention(x)); x = LN(x + MLP(x)).
#[derive(Debug, Clone, ModuleParameters)]
struct EncoderLayer {
    #[param]
    query: Linear,
    #[param]
    key: Linear,
    #[param]
    value: Linear,
    #[param]
    attention_output: Linear,
    #[param]
    attention_norm: LayerNorm,
    #[param]
    intermediate: Linear,
    #[param]
    output: Linear,
    #[param]
    output_norm: LayerNorm,
    heads: i32,
}

/// BERT (encoder and pooler) with a linear classifier on the pooled [CLS].
#[derive(Debug, Clone, ModuleParameters)]
pub struct BertClassifier {
    #[param]
    embeddings: Embeddings,
    #[param]
    layers: Vec<EncoderLayer>,
    #[param]
    pooler: Linear,
    #[param]
    classifier: Linear,
    /// The dtype of the forward and backward: float32, or bfloat16.
    compute: Dtype,
}

/// A batch on the device: ids and token types [batch, seq], and the
/// attention mask [batch, 1, 1, seq] (true: a real token to attend to).
struct Inputs {
    ids: Array,
    type_ids: Array,
    mask: Array,
}

impl Inputs {
    fn upload(tokens: &TokenBatch) -> MlxResult<Self> {
        let (b, s) = (tokens.batch as i32, tokens.seq_len as i32);
        Ok(Self {
            ids: Array::from_slice(&tokens.ids, &[b, s]),
            type_ids: Array::from_slice(&tokens.type_ids, &[b, s]),
            mask: Array::from_slice(&tokens.mask, &[b, 1, 1, s]).as_dtype(Dtype::Bool)?,
        })
    }
}

impl BertClassifier {
    /// The weights (with their classifier head) in float32, computing in
    /// the runtime's dtype.
    pub fn new(runtime: &MlxRuntime, config: &BertConfig, weights: &BertWeights) -> Result<Self> {
        let eps = config.layer_norm_eps;
        let model = Self {
            embeddings: Embeddings::new(&weights.embeddings, eps),
            layers: weights
                .layers
                .iter()
                .map(|layer| EncoderLayer::new(layer, config))
                .collect(),
            pooler: new_linear(&weights.pooler),
            classifier: new_linear(&weights.classifier),
            compute: runtime.dtype(),
        };
        let parameters = model.parameters().flatten();
        eval(parameters.values().copied())?;
        Ok(model)
    }

    /// The last hidden state [batch, seq, hidden], as float32 on the host.
    pub fn hidden_states(&mut self, tokens: &TokenBatch) -> Result<HostTensor> {
        let inputs = Inputs::upload(tokens)?;
        to_host_f32(&self.encode(&inputs)?)
    }

    /// Class logits [batch, classes], as float32 on the host.
    pub fn logits(&mut self, tokens: &TokenBatch) -> Result<HostTensor> {
        let inputs = Inputs::upload(tokens)?;
        to_host_f32(&self.forward_logits(&inputs)?)
    }

    fn encode(&mut self, inputs: &Inputs) -> MlxResult<Array> {
        let mut x = self.embeddings.forward(inputs, self.compute)?;
        for layer in &mut self.layers {
            x = layer.forward(&x, &inputs.mask)?;
        }
        Ok(x)
    }

    fn forward_logits(&mut self, inputs: &Inputs) -> MlxResult<Array> {
        let hidden = self.encode(inputs)?;
        let cls = hidden.take_axis(array!(0), 1)?;
        let pooled = mlx_rs::ops::tanh(linear(&self.pooler, &cls)?)?;
        linear(&self.classifier, &pooled)
    }

    /// Mean cross-entropy of the batch, computed in float32.
    fn loss(&mut self, inputs: &Inputs, labels: &Array) -> MlxResult<Array> {
        let logits = self.forward_logits(inputs)?.as_dtype(Dtype::Float32)?;
        CrossEntropyBuilder::new()
            .reduction(LossReduction::Mean)
            .build()?
            .apply(&logits, labels)
    }
}

impl Embeddings {
    fn new(weights: &EmbeddingWeights, eps: f64) -> Self {
        Self {
            word: new_embedding(&weights.word),
            position: new_embedding(&weights.position),
            token_type: new_embedding(&weights.token_type),
            norm: new_layer_norm(&weights.norm, eps),
        }
    }

    /// Sets the dtype that the rest of the forward pass follows.
    fn forward(&mut self, inputs: &Inputs, compute: Dtype) -> MlxResult<Array> {
        let seq_len = inputs.ids.shape()[1];
        let positions = Array::arange::<_, i32>(None, seq_len, None)?;
        let x = self
            .word
            .forward(&inputs.ids)?
            .add(self.position.forward(&positions)?)?
            .add(self.token_type.forward(&inputs.type_ids)?)?
            .as_dtype(compute)?;
        layer_norm(&self.norm, &x)
    }
}

impl EncoderLayer {
    fn new(weights: &LayerWeights, config: &BertConfig) -> Self {
        let eps = config.layer_norm_eps;
        Self {
            query: new_linear(&weights.query),
            key: new_linear(&weights.key),
            value: new_linear(&weights.value),
            attention_output: new_linear(&weights.attention_output),
            attention_norm: new_layer_norm(&weights.attention_norm, eps),
            intermediate: new_linear(&weights.intermediate),
            output: new_linear(&weights.output),
            output_norm: new_layer_norm(&weights.output_norm, eps),
            heads: config.num_attention_heads as i32,
        }
    }

    fn forward(&mut self, x: &Array, mask: &Array) -> MlxResult<Array> {
        let (b, s, h) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let head_dim = h / self.heads;
        // [b, s, h] -> [b, heads, s, head_dim]
        let split = |t: Array| {
            t.reshape(&[b, s, self.heads, head_dim])?
                .transpose_axes(&[0, 2, 1, 3])
        };
        let q = split(linear(&self.query, x)?)?;
        let k = split(linear(&self.key, x)?)?;
        let v = split(linear(&self.value, x)?)?;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let attended = scaled_dot_product_attention(&q, &k, &v, scale, mask, None)?
            .transpose_axes(&[0, 2, 1, 3])?
            .reshape(&[b, s, h])?;
        let x = layer_norm(
            &self.attention_norm,
            &linear(&self.attention_output, &attended)?.add(x)?,
        )?;
        let inner = nn::gelu(linear(&self.intermediate, &x)?)?;
        layer_norm(&self.output_norm, &linear(&self.output, &inner)?.add(&x)?)
    }
}

/// A linear layer of float32 parameters holding `weights`.
fn new_linear(weights: &LinearWeights) -> Linear {
    Linear {
        weight: Param::new(from_host(&weights.weight)),
        bias: Param::new(Some(from_host(&weights.bias))),
    }
}

fn new_layer_norm(weights: &LayerNormWeights, eps: f64) -> LayerNorm {
    LayerNorm {
        dimensions: weights.weight.shape[0] as i32,
        eps: eps as f32,
        weight: Param::new(Some(from_host(&weights.weight))),
        bias: Param::new(Some(from_host(&weights.bias))),
    }
}

fn new_embedding(table: &HostTensor) -> Embedding {
    Embedding {
        weight: Param::new(from_host(table)),
    }
}

/// x W^T + b in the dtype of `x`: the float32 weights are cast where they
/// are used, as PyTorch's autocast does, so that a bfloat16 forward and
/// backward return float32 gradients to float32 weights. A no-op cast in
/// float32.
fn linear(layer: &Linear, x: &Array) -> MlxResult<Array> {
    let weight = layer.weight.value.as_dtype(x.dtype())?;
    match &layer.bias.value {
        Some(bias) => addmm(bias.as_dtype(x.dtype())?, x, weight.t(), None, None),
        None => matmul(x, weight.t()),
    }
}

/// Layer normalisation in the dtype of `x` (MLX accumulates in float32),
/// with the float32 weights cast as in [`linear`].
fn layer_norm(norm: &LayerNorm, x: &Array) -> MlxResult<Array> {
    let cast = |p: &Option<Array>| p.as_ref().map(|p| p.as_dtype(x.dtype())).transpose();
    let (weight, bias) = (cast(&norm.weight.value)?, cast(&norm.bias.value)?);
    fast::layer_norm(x, weight.as_ref(), bias.as_ref(), norm.eps)
}

/// Everything the compiled step reads and writes besides its arguments.
struct TrainState {
    model: BertClassifier,
    optimizer: BiasCorrectedAdamW,
}

impl Updatable for TrainState {
    fn state_projection(&mut self) -> Result<StateProjection<'_>, StateProjectionError> {
        fw_mlx::project_training(&mut self.model, &mut self.optimizer)
    }
}

/// The training step that `compile` traces once: arguments [ids, token
/// types, mask, labels, decay, step size, sqrt(1 - b2^t)], result [loss].
/// Forward, backward and update become one graph, as mlx-examples compile
/// their steps with `mx.compile(step, inputs=state, outputs=state)`.
fn training_step(state: &mut TrainState, args: &[Array]) -> Result<Vec<Array>, Exception> {
    let [ids, type_ids, mask, labels, _, _, _] = args else {
        return Err(Exception::custom("training_step takes 7 arrays"));
    };
    let inputs = Inputs {
        ids: ids.clone(),
        type_ids: type_ids.clone(),
        mask: mask.clone(),
    };
    let loss_fn = |model: &mut BertClassifier, (inputs, labels): (&Inputs, &Array)| {
        model.loss(inputs, labels)
    };
    let (loss, gradients) = nn::value_and_grad(loss_fn)(&mut state.model, (&inputs, labels))?;
    state
        .optimizer
        .update(&mut state.model, &gradients, &StepScalars::from_args(args)?)?;
    Ok(vec![loss])
}

/// Fine-tunes a [`BertClassifier`] with AdamW.
pub struct Trainer {
    training: CompiledTraining<TrainState>,
    learning_rate: f64,
    loss: Option<Array>,
    /// The row's `execution=`.
    execution: &'static str,
}

impl Trainer {
    pub fn new(
        runtime: &MlxRuntime,
        config: &BertConfig,
        weights: &BertWeights,
        optimizer: &OptimizerSettings,
        execution: Execution,
    ) -> Result<Self> {
        let model = BertClassifier::new(runtime, config, weights)?;
        let state = TrainState {
            optimizer: BiasCorrectedAdamW::new(optimizer.hyper(), &model)?,
            model,
        };
        Ok(Self {
            training: CompiledTraining::new(state, training_step, |s| &mut s.optimizer)?,
            learning_rate: optimizer.learning_rate,
            loss: None,
            execution: runtime.execution_label(execution, true),
        })
    }
}

impl FineTune for Trainer {
    /// One training step: forward, backward, AdamW, compiled into one
    /// graph; evaluated once with the new parameters and optimiser state.
    fn step(&mut self, batch: &LabelledBatch) -> Result<()> {
        let inputs = Inputs::upload(&batch.tokens)?;
        let labels = Array::from_slice(&batch.labels, &[batch.labels.len() as i32]);
        let loss = self.training.step(
            [inputs.ids, inputs.type_ids, inputs.mask, labels],
            self.learning_rate,
        )?;
        self.loss = Some(loss);
        Ok(())
    }

    fn logits(&mut self, tokens: &TokenBatch) -> Result<HostTensor> {
        self.training.state_mut().model.logits(tokens)
    }

    /// The loss of the last step.
    fn last_loss(&self) -> Result<f32> {
        let loss = self
            .loss
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no training step has run"))?;
        Ok(loss.item_exact::<f32>())
    }

    fn execution(&self) -> &'static str {
        self.execution
    }

    fn optimizer(&self) -> &'static str {
        fw_mlx::optimizer_label(self.execution)
    }
}
