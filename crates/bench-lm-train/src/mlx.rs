//! MLX twin: mlx-rs modules, `value_and_grad` over the model and an AdamW
//! update, compiled into one graph (`compile_with_state`, as mlx-examples'
//! `mx.compile` of its step), and one `eval` of the loss, the new weights
//! and the optimiser state per step (MLX is lazy: nothing runs before that
//! `eval`). On the CPU, MLX fuses the compiled graph's element-wise work
//! into kernels it builds with g++ (during warm-up, cached in the temporary
//! directory); without g++, or with `MLX_DISABLE_COMPILE=1`, it runs the
//! same graph unfused.

use std::path::Path;

use anyhow::Result;
use bench_core::host::HostTensor;
use bench_core::Execution;
use fw_mlx::{
    from_host, load_safetensors, to_host_f32, BiasCorrectedAdamW, MlxRuntime, StepScalars,
};
use mlx_rs::builder::Builder;
use mlx_rs::error::Exception;
use mlx_rs::error::StateProjectionError;
use mlx_rs::fast::{scaled_dot_product_attention, ScaledDotProductAttentionMask};
use mlx_rs::losses::{CrossEntropyBuilder, LossReduction};
use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::{Module, ModuleParameters};
use mlx_rs::nn::{self, Embedding, LayerNorm, LayerNormBuilder, Linear, LinearBuilder};
use mlx_rs::ops::indexing::IndexOp;
use mlx_rs::random::RandomState;
use mlx_rs::transforms::compile::compile_with_state;
use mlx_rs::transforms::eval;
use mlx_rs::utils::{StateProjection, Updatable};
use mlx_rs::{Array, Dtype};

use crate::config::ModelConfig;
use crate::config::{sinusoidal_positions, LAYER_NORM_EPS};
use crate::data::Batch;
use crate::weights::{check_all_used, check_shape, missing_tensor};
use crate::workload::{LmConfig, TrainConfig};
use crate::LmTrainer;

/// Causal self-attention; no projection biases (as MLX's MultiHeadAttention).
#[derive(Debug, ModuleParameters)]
struct Attention {
    #[param]
    query_proj: Linear,
    #[param]
    key_proj: Linear,
    #[param]
    value_proj: Linear,
    #[param]
    out_proj: Linear,
    heads: i32,
}

impl Attention {
    fn new(config: &ModelConfig) -> Result<Self, Exception> {
        let d = config.dim as i32;
        let projection = || LinearBuilder::new(d, d).bias(false).build();
        Ok(Self {
            query_proj: projection()?,
            key_proj: projection()?,
            value_proj: projection()?,
            out_proj: projection()?,
            heads: config.heads as i32,
        })
    }

    fn forward(&mut self, x: &Array) -> Result<Array, Exception> {
        let (b, t, d) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let head_dim = d / self.heads;
        let split_heads = |y: Array| {
            y.reshape(&[b, t, self.heads, head_dim])?
                .transpose_axes(&[0, 2, 1, 3])
        };
        let q = split_heads(self.query_proj.forward(x)?)?;
        let k = split_heads(self.key_proj.forward(x)?)?;
        let v = split_heads(self.value_proj.forward(x)?)?;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let causal = Some(ScaledDotProductAttentionMask::Causal);
        let o = scaled_dot_product_attention(q, k, v, scale, causal, None)?;
        let o = o.transpose_axes(&[0, 2, 1, 3])?.reshape(&[b, t, d])?;
        self.out_proj.forward(&o)
    }
}

/// A pre-norm block, as MLX's `TransformerEncoderLayer(norm_first=True)`
/// with ReLU.
#[derive(Debug, ModuleParameters)]
struct Block {
    #[param]
    ln1: LayerNorm,
    #[param]
    attention: Attention,
    #[param]
    ln2: LayerNorm,
    #[param]
    linear1: Linear,
    #[param]
    linear2: Linear,
    dropout: f32,
}

impl Block {
    fn new(config: &ModelConfig) -> Result<Self, Exception> {
        let (d, f) = (config.dim as i32, config.ffn_dim as i32);
        Ok(Self {
            ln1: layer_norm(d)?,
            attention: Attention::new(config)?,
            ln2: layer_norm(d)?,
            linear1: Linear::new(d, f)?,
            linear2: Linear::new(f, d)?,
            dropout: config.dropout,
        })
    }

    /// `keys` is None outside training (no dropout).
    fn forward(
        &mut self,
        x: &Array,
        mut keys: Option<&mut RandomState>,
    ) -> Result<Array, Exception> {
        let y = self.attention.forward(&self.ln1.forward(x)?)?;
        let x = x.add(dropout(&y, self.dropout, keys.as_deref_mut())?)?;
        let y = nn::relu(self.linear1.forward(&self.ln2.forward(&x)?)?)?;
        let y = self.linear2.forward(&dropout(&y, self.dropout, keys)?)?;
        x.add(y)
    }
}

fn layer_norm(dim: i32) -> Result<LayerNorm, Exception> {
    LayerNormBuilder::new(dim).eps(LAYER_NORM_EPS).build()
}

/// Inverted dropout, as MLX's `nn.Dropout`, but with the mask and the scale
/// in the activations' dtype (mlx-rs's `Dropout` multiplies by a float32
/// scalar array, which would turn bfloat16 activations into float32), and
/// with keys from the compiled step's random state, so that each step
/// draws new masks.
fn dropout(x: &Array, p: f32, keys: Option<&mut RandomState>) -> Result<Array, Exception> {
    let Some(keys) = keys.filter(|_| p > 0.0) else {
        return Ok(x.clone());
    };
    let keep = Array::from_f32(1.0 - p);
    let key = keys.next_key()?;
    let mask = mlx_rs::random::bernoulli(&keep, x.shape(), &key)?;
    let scale = Array::from_f32(1.0 / (1.0 - p)).as_dtype(x.dtype())?;
    x.multiply(mask.as_dtype(x.dtype())?)?.multiply(scale)
}

/// mlx-examples' TransformerLM: embedding + sinusoidal positions, pre-norm
/// blocks under a causal mask, a final LayerNorm, an output projection.
#[derive(Debug, ModuleParameters)]
pub struct TransformerLm {
    #[param]
    embedding: Embedding,
    #[param]
    layers: Vec<Block>,
    #[param]
    ln: LayerNorm,
    #[param]
    out_proj: Linear,
    /// [context, dim], shared with the PyTorch twin; not trained.
    positions: Array,
}

impl TransformerLm {
    /// Builds the module tree, then replaces every parameter with the
    /// checkpoint's tensor of the same name (MLX's own random initial
    /// values are lazy and never computed).
    pub fn load(runtime: &MlxRuntime, config: &ModelConfig, checkpoint: &Path) -> Result<Self> {
        let (v, d) = (config.vocab_size as i32, config.dim as i32);
        let mut model = Self {
            embedding: Embedding::new(v, d)?,
            layers: (0..config.layers)
                .map(|_| Block::new(config))
                .collect::<Result<_, _>>()?,
            ln: layer_norm(d)?,
            out_proj: Linear::new(d, v)?,
            positions: from_host(&sinusoidal_positions(config.context, config.dim))
                .as_dtype(runtime.dtype())?,
        };
        let mut tensors = load_safetensors(checkpoint)?;
        let mut parameters = model.parameters_mut().flatten();
        let mut names: Vec<_> = parameters.keys().cloned().collect();
        names.sort();
        for name in names {
            let parameter = parameters.get_mut(&name).expect("name taken from the map");
            let expected = dims(parameter.shape());
            let tensor = tensors
                .remove(&*name)
                .ok_or_else(|| missing_tensor(checkpoint, &name, &expected))?;
            check_shape(checkpoint, &name, &expected, &dims(tensor.shape()))?;
            **parameter = tensor.as_dtype(runtime.dtype())?;
        }
        check_all_used(checkpoint, tensors.into_keys().collect())?;
        eval(
            model
                .parameters()
                .flatten()
                .values()
                .copied()
                .chain([&model.positions]),
        )?;
        Ok(model)
    }

    /// Logits [batch, context, vocab] in the runtime's dtype; `keys` is
    /// None outside training (no dropout).
    fn forward(
        &mut self,
        inputs: &Array,
        mut keys: Option<&mut RandomState>,
    ) -> Result<Array, Exception> {
        let t = inputs.shape()[1];
        let positions = self.positions.index(..t);
        let mut x = self.embedding.forward(inputs)?.add(positions)?;
        for layer in &mut self.layers {
            x = layer.forward(&x, keys.as_deref_mut())?;
        }
        self.out_proj.forward(&self.ln.forward(&x)?)
    }

    /// Mean next-token cross-entropy; the logits are cast to float32 first
    /// (on both twins), so that bfloat16 runs do the softmax in float32.
    fn loss(
        &mut self,
        inputs: &Array,
        targets: &Array,
        keys: Option<&mut RandomState>,
    ) -> Result<Array, Exception> {
        let logits = self.forward(inputs, keys)?;
        CrossEntropyBuilder::new()
            .reduction(LossReduction::Mean)
            .build()?
            .apply(logits.as_dtype(Dtype::Float32)?, targets)
    }
}

/// AdamW with PyTorch's update (`torch::optim::AdamW`, which the PyTorch
/// twin runs), so that both twins take the same step:
///   p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
///   p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
/// Everything the compiled step reads and writes besides its arguments.
struct TrainState {
    model: TransformerLm,
    optimizer: BiasCorrectedAdamW,
    /// Keys for dropout masks (unused at dropout 0).
    random: RandomState,
}

impl Updatable for TrainState {
    fn state_projection(&mut self) -> Result<StateProjection<'_>, StateProjectionError> {
        let mut projection = StateProjection::new();
        fw_mlx::project_model(&mut self.model, &mut projection)?;
        self.optimizer.project_state(&mut projection)?;
        projection.required("random", self.random.as_array_mut())?;
        Ok(projection)
    }
}

/// The training step that `compile` traces once: arguments [inputs,
/// targets, decay, step size, sqrt(1 - b2^t)], result [loss]. Forward,
/// backward and update become one graph, as mlx-examples' training loop
/// does with `mx.compile(step, inputs=state, outputs=state)`.
fn training_step(state: &mut TrainState, args: &[Array]) -> Result<Vec<Array>, Exception> {
    let [inputs, targets, _, _, _] = args else {
        return Err(Exception::custom("training_step takes 5 arrays"));
    };
    let TrainState {
        model,
        optimizer,
        random,
    } = state;
    let loss_fn = |model: &mut TransformerLm, (inputs, targets): (&Array, &Array)| {
        model.loss(inputs, targets, Some(&mut *random))
    };
    let (loss, gradients) = nn::value_and_grad(loss_fn)(model, (inputs, targets))?;
    optimizer.update(model, &gradients, &StepScalars::from_args(args)?)?;
    Ok(vec![loss])
}

type CompiledStep = Box<dyn FnMut(&mut TrainState, &[Array]) -> Result<Vec<Array>, Exception>>;

/// A batch on the device (int32 token ids), uploaded before timing.
pub struct DeviceBatch {
    inputs: Array,
    targets: Array,
}

/// The model, its optimiser and the step count.
pub struct Trainer {
    state: TrainState,
    step_fn: CompiledStep,
    train: TrainConfig,
    /// The row's `execution=`.
    execution: &'static str,
}

impl LmTrainer for Trainer {
    type Runtime = MlxRuntime;
    type DeviceBatch = DeviceBatch;

    /// `seed` seeds the dropout masks.
    fn new(
        runtime: &MlxRuntime,
        config: &LmConfig,
        checkpoint: &Path,
        seed: u64,
        execution: Execution,
    ) -> Result<Self> {
        let model = TransformerLm::load(runtime, &config.model, checkpoint)?;
        let optimizer = BiasCorrectedAdamW::new(config.train.adamw_hyper(), &model)?;
        let mut state = TrainState {
            model,
            optimizer,
            random: RandomState::with_seed(seed)?,
        };
        eval(state.state_projection()?.into_entries().map(|(_, a)| a))?;
        Ok(Self {
            state,
            // In eager mode MLX_DISABLE_COMPILE makes this a no-op.
            step_fn: Box::new(compile_with_state(training_step, false)),
            train: config.train.clone(),
            execution: runtime.execution_label(execution, true),
        })
    }

    /// The row's `execution=`.
    fn execution(&self) -> &'static str {
        self.execution
    }

    /// The row's `optimizer=`: the update's element-wise work is traced
    /// into the compiled step, which fuses it; eager runs it per parameter.
    fn optimizer(&self) -> &'static str {
        if self.execution.starts_with("compiled") {
            "fused (compiled into the step)"
        } else {
            "per-parameter"
        }
    }

    /// Copies a host batch to the device (untimed set-up).
    fn upload(&self, batch: &Batch) -> Result<DeviceBatch> {
        let shape = [batch.batch_size as i32, batch.context as i32];
        let ids = |tokens: &[u32]| -> Result<Array> {
            let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
            let array = Array::from_slice(&ids, &shape);
            array.eval()?;
            Ok(array)
        };
        Ok(DeviceBatch {
            inputs: ids(&batch.inputs)?,
            targets: ids(&batch.targets)?,
        })
    }

    /// One training step: forward, backward, AdamW update, all evaluated.
    /// Returns the step's loss (before the update).
    fn train_step(&mut self, batch: &DeviceBatch) -> Result<f32> {
        let lr = self
            .train
            .learning_rate_at(self.state.optimizer.steps() + 1);
        let [decay, step_size, sqrt_bias_correction2] =
            self.state.optimizer.next_step(lr).into_args();
        let args = [
            batch.inputs.clone(),
            batch.targets.clone(),
            decay,
            step_size,
            sqrt_bias_correction2,
        ];
        let loss = (self.step_fn)(&mut self.state, &args)?.remove(0);
        let state = self.state.state_projection()?;
        eval(
            [&loss]
                .into_iter()
                .chain(state.into_entries().map(|(_, a)| a)),
        )?;
        Ok(loss.try_item_exact::<f32>()?)
    }

    /// Mean loss over held-out batches, without dropout or gradients.
    fn eval_loss(&mut self, batches: &[DeviceBatch]) -> Result<f32> {
        let mut total = 0.0;
        for batch in batches {
            let loss = self.state.model.loss(&batch.inputs, &batch.targets, None)?;
            loss.eval()?;
            total += loss.try_item_exact::<f32>()?;
        }
        Ok(total / batches.len() as f32)
    }

    /// The current weights by name, as float32 on the host.
    fn weights(&self) -> Result<Vec<(String, HostTensor)>> {
        let mut weights = self
            .state
            .model
            .parameters()
            .flatten()
            .into_iter()
            .map(|(name, array)| Ok((name.to_string(), to_host_f32(array)?)))
            .collect::<Result<Vec<_>>>()?;
        weights.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(weights)
    }
}

fn dims(shape: &[i32]) -> Vec<usize> {
    shape.iter().map(|&d| d as usize).collect()
}
