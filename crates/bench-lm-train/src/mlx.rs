//! MLX twin: mlx-rs modules, `value_and_grad` over the model and an AdamW
//! update, compiled into one graph (`compile_with_state`, as mlx-examples'
//! `mx.compile` of its step), and one `eval` of the loss, the new weights
//! and the optimiser state per step (MLX is lazy: nothing runs before that
//! `eval`). On the CPU, MLX fuses the compiled graph's element-wise work
//! into kernels it builds with g++ (during warm-up, cached in the temporary
//! directory); without g++, or with `MLX_DISABLE_COMPILE=1`, it runs the
//! same graph unfused.

use std::path::Path;
use std::rc::Rc;

use anyhow::{Context, Result};
use bench_core::host::HostTensor;
use bench_core::Execution;
use fw_mlx::distributed::Group;
use fw_mlx::{
    from_host, to_host_f32, BiasCorrectedAdamW, CompiledTraining, MlxRuntime, StepScalars,
};
use mlx_rs::builder::Builder;
use mlx_rs::error::Exception;
use mlx_rs::error::StateProjectionError;
use mlx_rs::fast::{scaled_dot_product_attention, ScaledDotProductAttentionMask};
use mlx_rs::losses::{CrossEntropyBuilder, LossReduction};
use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::{FlattenedModuleParam, Module, ModuleParameters, Param};
use mlx_rs::nn::{self, Embedding, LayerNorm, Linear};
use mlx_rs::ops::indexing::IndexOp;
use mlx_rs::random::RandomState;
use mlx_rs::transforms::eval;
use mlx_rs::utils::{StateProjection, Updatable};
use mlx_rs::{Array, Dtype};

use crate::config::ModelConfig;
use crate::config::{sinusoidal_positions, LAYER_NORM_EPS};
use crate::data::Batch;
use crate::weights::{
    AttentionWeights, BlockWeights, LayerNormWeights, LinearWeights, LmWeights, NamedWeights,
    ParameterNames,
};
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
    fn new(weights: AttentionWeights<Array>, config: &ModelConfig) -> Self {
        Self {
            query_proj: projection(weights.query_proj),
            key_proj: projection(weights.key_proj),
            value_proj: projection(weights.value_proj),
            out_proj: projection(weights.out_proj),
            heads: config.heads as i32,
        }
    }

    fn weights(&self) -> AttentionWeights<&Array> {
        AttentionWeights {
            query_proj: &self.query_proj.weight,
            key_proj: &self.key_proj.weight,
            value_proj: &self.value_proj.weight,
            out_proj: &self.out_proj.weight,
        }
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
    fn new(weights: BlockWeights<Array>, config: &ModelConfig) -> Self {
        Self {
            ln1: layer_norm(weights.ln1),
            attention: Attention::new(weights.attention, config),
            ln2: layer_norm(weights.ln2),
            linear1: linear(weights.linear1),
            linear2: linear(weights.linear2),
            dropout: config.dropout,
        }
    }

    fn weights(&self) -> Result<BlockWeights<&Array>> {
        Ok(BlockWeights {
            ln1: layer_norm_weights(&self.ln1)?,
            attention: self.attention.weights(),
            ln2: layer_norm_weights(&self.ln2)?,
            linear1: linear_weights(&self.linear1)?,
            linear2: linear_weights(&self.linear2)?,
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

/// A projection without bias, holding `weight`.
fn projection(weight: Array) -> Linear {
    Linear {
        weight: Param::new(weight),
        bias: Param::new(None),
    }
}

fn linear(weights: LinearWeights<Array>) -> Linear {
    Linear {
        weight: Param::new(weights.weight),
        bias: Param::new(Some(weights.bias)),
    }
}

fn layer_norm(weights: LayerNormWeights<Array>) -> LayerNorm {
    LayerNorm {
        dimensions: weights.weight.shape()[0],
        eps: LAYER_NORM_EPS,
        weight: Param::new(Some(weights.weight)),
        bias: Param::new(Some(weights.bias)),
    }
}

fn linear_weights(layer: &Linear) -> Result<LinearWeights<&Array>> {
    Ok(LinearWeights {
        weight: &layer.weight,
        bias: present(&layer.bias)?,
    })
}

fn layer_norm_weights(norm: &LayerNorm) -> Result<LayerNormWeights<&Array>> {
    Ok(LayerNormWeights {
        weight: present(&norm.weight)?,
        bias: present(&norm.bias)?,
    })
}

/// An optional parameter that the model built from `LmWeights` always has.
fn present(parameter: &Option<Array>) -> Result<&Array> {
    parameter
        .as_ref()
        .context("a bias or norm parameter of the model is absent")
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
    /// The checkpoint's name of each parameter.
    names: ParameterNames,
}

impl TransformerLm {
    /// Builds the module tree from the checkpoint's weights, each uploaded
    /// in the runtime's dtype as it is read.
    pub fn load(runtime: &MlxRuntime, config: &ModelConfig, checkpoint: &Path) -> Result<Self> {
        let dtype = runtime.dtype();
        let NamedWeights { weights, names } = LmWeights::read(checkpoint, config, |tensor| {
            Ok(from_host(&tensor).as_dtype(dtype)?)
        })?;
        let model = Self {
            embedding: Embedding {
                weight: Param::new(weights.embedding),
            },
            layers: (weights.layers.into_iter())
                .map(|layer| Block::new(layer, config))
                .collect(),
            ln: layer_norm(weights.ln),
            out_proj: linear(weights.out_proj),
            positions: from_host(&sinusoidal_positions(config.context, config.dim))
                .as_dtype(dtype)?,
            names,
        };
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

    /// The current parameters, in the shape they were loaded in.
    fn weights(&self) -> Result<LmWeights<&Array>> {
        Ok(LmWeights {
            embedding: &self.embedding.weight,
            layers: self
                .layers
                .iter()
                .map(Block::weights)
                .collect::<Result<_>>()?,
            ln: layer_norm_weights(&self.ln)?,
            out_proj: linear_weights(&self.out_proj)?,
        })
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
    /// Data-parallel training (bench-distributed's `dp-train`): the
    /// gradients' mean over the ranks, taken inside the compiled step.
    average: Option<GradientAverage>,
}

/// `mlx.nn.average_gradients` between backward and update, as MLX's
/// data-parallel examples call it inside their compiled step.
struct GradientAverage {
    group: Rc<Group>,
    all_reduce_bytes: usize,
}

impl GradientAverage {
    /// The gradients in one order on every rank (by name), averaged.
    fn apply(&self, gradients: FlattenedModuleParam) -> Result<FlattenedModuleParam, Exception> {
        let mut named: Vec<(Rc<str>, Array)> = gradients.into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let (names, arrays): (Vec<Rc<str>>, Vec<Array>) = named.into_iter().unzip();
        let averaged = self
            .group
            .average_gradients(&arrays, self.all_reduce_bytes)
            .map_err(|e| Exception::custom(format!("averaging gradients: {e:#}")))?;
        Ok(names.into_iter().zip(averaged).collect())
    }
}

impl Updatable for TrainState {
    fn state_projection(&mut self) -> Result<StateProjection<'_>, StateProjectionError> {
        let mut projection = fw_mlx::project_training(&mut self.model, &mut self.optimizer)?;
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
        average,
    } = state;
    let loss_fn = |model: &mut TransformerLm, (inputs, targets): (&Array, &Array)| {
        model.loss(inputs, targets, Some(&mut *random))
    };
    let (loss, gradients) = nn::value_and_grad(loss_fn)(model, (inputs, targets))?;
    let gradients = match average {
        Some(average) => average.apply(gradients)?,
        None => gradients,
    };
    optimizer.update(model, &gradients, &StepScalars::from_args(args)?)?;
    Ok(vec![loss])
}

/// A batch on the device (int32 token ids), uploaded before timing.
pub struct DeviceBatch {
    inputs: Array,
    targets: Array,
}

/// The model, its optimiser and the step count.
pub struct Trainer {
    training: CompiledTraining<TrainState>,
    train: TrainConfig,
    /// The row's `execution=`.
    execution: &'static str,
}

impl Trainer {
    /// Data-parallel training over `group` (bench-distributed's
    /// `dp-train`): from the next step on, the step averages the gradients
    /// over the ranks before the update, as `mlx.nn.average_gradients`
    /// does (groups of at least `all_reduce_bytes`; MLX's default is 32
    /// MiB). Call before the first step, which traces the compiled step.
    pub fn average_gradients(&mut self, group: Rc<Group>, all_reduce_bytes: usize) {
        self.training.state_mut().average = Some(GradientAverage {
            group,
            all_reduce_bytes,
        });
    }
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
        let state = TrainState {
            model,
            optimizer,
            random: RandomState::with_seed(seed)?,
            average: None,
        };
        Ok(Self {
            training: CompiledTraining::new(state, training_step, |s| &mut s.optimizer)?,
            train: config.train.clone(),
            execution: runtime.execution_label(execution, true),
        })
    }

    /// The row's `execution=`.
    fn execution(&self) -> &'static str {
        self.execution
    }

    /// The row's `optimizer=`.
    fn optimizer(&self) -> &'static str {
        fw_mlx::optimizer_label(self.execution)
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
        let steps = self.training.state().optimizer.steps();
        let lr = self.train.learning_rate_at(steps + 1);
        let inputs = [batch.inputs.clone(), batch.targets.clone()];
        let loss = self.training.step(inputs, lr)?;
        Ok(loss.try_item_exact::<f32>()?)
    }

    /// Mean loss over held-out batches, without dropout or gradients.
    fn eval_loss(&mut self, batches: &[DeviceBatch]) -> Result<f32> {
        let mut total = 0.0;
        for batch in batches {
            let model = &mut self.training.state_mut().model;
            let loss = model.loss(&batch.inputs, &batch.targets, None)?;
            loss.eval()?;
            total += loss.try_item_exact::<f32>()?;
        }
        Ok(total / batches.len() as f32)
    }

    /// The current weights by name, as float32 on the host.
    fn weights(&self) -> Result<Vec<(String, HostTensor)>> {
        let model = &self.training.state().model;
        let weights = model.weights()?;
        let named = model.names.label(&weights)?;
        named
            .into_iter()
            .map(|(name, array)| Ok((name.to_owned(), to_host_f32(array)?)))
            .collect()
    }
}
