//! MLX twin: BERT with a classification head on mlx-rs modules; a
//! training step is `value_and_grad`, AdamW, and one `eval` of the
//! parameters, optimiser state and loss. The parameters and AdamW state are
//! float32; the forward and backward run in the compute dtype (see
//! [`linear`]).

use anyhow::Result;
use bench_core::host::HostTensor;
use bench_core::Execution;
use fw_mlx::{from_host, to_host_f32, MlxRuntime};
use mlx_rs::builder::Builder;
use mlx_rs::error::Exception;
use mlx_rs::fast::{self, scaled_dot_product_attention};
use mlx_rs::losses::{CrossEntropyBuilder, LossReduction};
use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::{Module, ModuleParameters as _, Param};
use mlx_rs::nn::{self, Embedding, LayerNorm, Linear};
use mlx_rs::ops::{addmm, matmul};
use mlx_rs::optimizers::{AdamW, Optimizer};
use mlx_rs::transforms::eval;
use mlx_rs::{array, Array, Dtype};

use crate::config::BertConfig;
use crate::tokens::{LabelledBatch, TokenBatch};
use crate::weights::Checkpoint;
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

/// Builds modules from the host checkpoint, in float32.
struct Loader<'a> {
    checkpoint: &'a Checkpoint,
}

impl Loader<'_> {
    fn tensor(&self, name: &str) -> Result<Array> {
        Ok(from_host(self.checkpoint.get(name)?))
    }

    fn linear(&self, name: &str) -> Result<Linear> {
        Ok(Linear {
            weight: Param::new(self.tensor(&format!("{name}.weight"))?),
            bias: Param::new(Some(self.tensor(&format!("{name}.bias"))?)),
        })
    }

    fn layer_norm(&self, name: &str, eps: f64) -> Result<LayerNorm> {
        let weight = self.tensor(&format!("{name}.weight"))?;
        Ok(LayerNorm {
            dimensions: weight.shape()[0],
            eps: eps as f32,
            weight: Param::new(Some(weight)),
            bias: Param::new(Some(self.tensor(&format!("{name}.bias"))?)),
        })
    }

    fn embedding(&self, name: &str) -> Result<Embedding> {
        Ok(Embedding {
            weight: Param::new(self.tensor(&format!("{name}.weight"))?),
        })
    }
}

impl BertClassifier {
    /// The checkpoint's weights (with its classifier head) in float32,
    /// computing in the runtime's dtype.
    pub fn new(runtime: &MlxRuntime, config: &BertConfig, checkpoint: &Checkpoint) -> Result<Self> {
        let load = Loader { checkpoint };
        let eps = config.layer_norm_eps;
        let embeddings = Embeddings {
            word: load.embedding("embeddings.word_embeddings")?,
            position: load.embedding("embeddings.position_embeddings")?,
            token_type: load.embedding("embeddings.token_type_embeddings")?,
            norm: load.layer_norm("embeddings.LayerNorm", eps)?,
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                Ok(EncoderLayer {
                    query: load.linear(&format!("{p}.attention.self.query"))?,
                    key: load.linear(&format!("{p}.attention.self.key"))?,
                    value: load.linear(&format!("{p}.attention.self.value"))?,
                    attention_output: load.linear(&format!("{p}.attention.output.dense"))?,
                    attention_norm: load
                        .layer_norm(&format!("{p}.attention.output.LayerNorm"), eps)?,
                    intermediate: load.linear(&format!("{p}.intermediate.dense"))?,
                    output: load.linear(&format!("{p}.output.dense"))?,
                    output_norm: load.layer_norm(&format!("{p}.output.LayerNorm"), eps)?,
                    heads: config.num_attention_heads as i32,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let model = Self {
            embeddings,
            layers,
            pooler: load.linear("pooler.dense")?,
            classifier: load.linear("classifier")?,
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

/// AdamW with bias correction, as PyTorch's. mlx-rs 0.33's `AdamW` has none
/// (MLX's Python AdamW makes it optional, off by default); with step t,
/// bc1 = 1 - beta1^t, bc2 = 1 - beta2^t, PyTorch's update
///   p <- p (1 - lr wd) - lr (m / bc1) / (sqrt(v) / sqrt(bc2) + eps)
/// equals mlx-rs's
///   p <- p (1 - lr' wd') - lr' m / (sqrt(v) + eps')
/// with lr' = lr sqrt(bc2) / bc1, eps' = eps sqrt(bc2), wd' = wd lr / lr',
/// which this sets before each step.
struct BiasCorrectedAdamW {
    inner: AdamW,
    settings: OptimizerSettings,
    step: i32,
}

impl BiasCorrectedAdamW {
    fn new(settings: &OptimizerSettings) -> Self {
        let inner = AdamW {
            lr: array!(settings.learning_rate as f32),
            betas: (array!(settings.beta1 as f32), array!(settings.beta2 as f32)),
            eps: array!(settings.eps as f32),
            weight_decay: array!(settings.weight_decay as f32),
            state: Default::default(),
        };
        Self {
            inner,
            settings: settings.clone(),
            step: 0,
        }
    }

    fn update(
        &mut self,
        model: &mut BertClassifier,
        gradients: &mlx_rs::module::FlattenedModuleParam,
    ) -> MlxResult<()> {
        self.step += 1;
        let s = &self.settings;
        let bc1 = 1.0 - s.beta1.powi(self.step);
        let bc2 = 1.0 - s.beta2.powi(self.step);
        let lr = s.learning_rate * bc2.sqrt() / bc1;
        self.inner.lr = array!(lr as f32);
        self.inner.eps = array!((s.eps * bc2.sqrt()) as f32);
        self.inner.weight_decay = array!((s.weight_decay * s.learning_rate / lr) as f32);
        self.inner.update(model, gradients)
    }

    fn state(&self) -> impl Iterator<Item = &Array> {
        self.inner.state.values().flat_map(|(m, v)| [m, v])
    }
}

/// Fine-tunes a [`BertClassifier`] with AdamW.
pub struct Trainer {
    model: BertClassifier,
    optimizer: BiasCorrectedAdamW,
    loss: Option<Array>,
    /// The row's `execution=`.
    execution: &'static str,
}

impl Trainer {
    pub fn new(
        runtime: &MlxRuntime,
        config: &BertConfig,
        checkpoint: &Checkpoint,
        optimizer: &OptimizerSettings,
        execution: Execution,
    ) -> Result<Self> {
        Ok(Self {
            model: BertClassifier::new(runtime, config, checkpoint)?,
            optimizer: BiasCorrectedAdamW::new(optimizer),
            loss: None,
            execution: runtime.execution_label(execution, false),
        })
    }
}

impl FineTune for Trainer {
    /// One training step: forward, backward, AdamW; evaluated once.
    fn step(&mut self, batch: &LabelledBatch) -> Result<()> {
        let inputs = Inputs::upload(&batch.tokens)?;
        let labels = Array::from_slice(&batch.labels, &[batch.labels.len() as i32]);
        let loss_fn = |model: &mut BertClassifier,
                       (inputs, labels): (&Inputs, &Array)|
         -> MlxResult<Array> { model.loss(inputs, labels) };
        let mut loss_and_grad = nn::value_and_grad(loss_fn);
        let (loss, gradients) = loss_and_grad(&mut self.model, (&inputs, &labels))?;
        self.optimizer.update(&mut self.model, &gradients)?;
        let parameters = self.model.parameters().flatten();
        eval(
            parameters
                .values()
                .copied()
                .chain(self.optimizer.state())
                .chain([&loss]),
        )?;
        self.loss = Some(loss);
        Ok(())
    }

    fn logits(&mut self, tokens: &TokenBatch) -> Result<HostTensor> {
        self.model.logits(tokens)
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
        "per-parameter"
    }
}
