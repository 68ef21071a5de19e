//! PyTorch twin: tch modules in a VarStore, fused causal
//! `scaled_dot_product_attention`, then `zero_grad`, `backward` and an
//! AdamW step. At its best (the default) the twin runs as PyTorch's
//! whole-network CUDA graph recipe: fused AdamW (`AdamW(fused=True)`, step
//! count and learning rate on the device), and on CUDA the whole step
//! (forward, backward, update) captured once and replayed, with each batch
//! copied into the graph's static input tensors. Eager mode
//! (`--execution eager`) runs libtorch's per-parameter AdamW op by op.

use std::path::Path;

use anyhow::{Context, Result};
use bench_core::host::HostTensor;
use bench_core::Execution;
use fw_torch::distributed::{Group, Reducer};
use fw_torch::{
    cuda_graphs_available, from_host, to_host_f32, AdamW, AdamWKind, GraphedStep, TorchRuntime,
};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

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
#[derive(Debug)]
struct Attention {
    query_proj: nn::Linear,
    key_proj: nn::Linear,
    value_proj: nn::Linear,
    out_proj: nn::Linear,
    heads: i64,
}

impl Attention {
    fn new(weights: AttentionWeights<Tensor>, config: &ModelConfig) -> Self {
        Self {
            query_proj: projection(weights.query_proj),
            key_proj: projection(weights.key_proj),
            value_proj: projection(weights.value_proj),
            out_proj: projection(weights.out_proj),
            heads: config.heads as i64,
        }
    }

    fn weights(&self) -> AttentionWeights<&Tensor> {
        AttentionWeights {
            query_proj: &self.query_proj.ws,
            key_proj: &self.key_proj.ws,
            value_proj: &self.value_proj.ws,
            out_proj: &self.out_proj.ws,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let (b, t, d) = (x.size()[0], x.size()[1], x.size()[2]);
        let head_dim = d / self.heads;
        let split_heads = |y: Tensor| y.reshape([b, t, self.heads, head_dim]).transpose(1, 2);
        let q = split_heads(self.query_proj.forward(x));
        let k = split_heads(self.key_proj.forward(x));
        let v = split_heads(self.value_proj.forward(x));
        let scale = 1.0 / (head_dim as f64).sqrt();
        let o = Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            None::<Tensor>,
            0.0,
            true,
            scale,
            false,
        );
        let o = o.transpose(1, 2).reshape([b, t, d]);
        self.out_proj.forward(&o)
    }
}

/// A pre-norm block, as MLX's `TransformerEncoderLayer(norm_first=True)`
/// with ReLU.
#[derive(Debug)]
struct Block {
    ln1: LayerNorm,
    attention: Attention,
    ln2: LayerNorm,
    linear1: nn::Linear,
    linear2: nn::Linear,
    dropout: f32,
}

impl Block {
    fn new(weights: BlockWeights<Tensor>, config: &ModelConfig) -> Self {
        Self {
            ln1: layer_norm(weights.ln1),
            attention: Attention::new(weights.attention, config),
            ln2: layer_norm(weights.ln2),
            linear1: linear(weights.linear1),
            linear2: linear(weights.linear2),
            dropout: config.dropout,
        }
    }

    fn weights(&self) -> Result<BlockWeights<&Tensor>> {
        Ok(BlockWeights {
            ln1: layer_norm_weights(&self.ln1),
            attention: self.attention.weights(),
            ln2: layer_norm_weights(&self.ln2),
            linear1: linear_weights(&self.linear1)?,
            linear2: linear_weights(&self.linear2)?,
        })
    }

    fn forward(&self, x: &Tensor, training: bool) -> Tensor {
        let y = self.attention.forward(&self.ln1.forward(x));
        let x = x + dropout(&y, self.dropout, training);
        let y = self.linear1.forward(&self.ln2.forward(&x)).relu();
        let y = self.linear2.forward(&dropout(&y, self.dropout, training));
        x + y
    }
}

/// Layer normalisation over the last dimension, as `nn::LayerNorm` (whose
/// fields tch keeps private, so it cannot be built from given tensors).
#[derive(Debug)]
struct LayerNorm {
    ws: Tensor,
    bs: Tensor,
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Tensor {
        let eps = LAYER_NORM_EPS as f64;
        x.layer_norm(self.ws.size(), Some(&self.ws), Some(&self.bs), eps, true)
    }
}

/// A projection without bias, holding `weight`.
fn projection(weight: Tensor) -> nn::Linear {
    nn::Linear {
        ws: weight,
        bs: None,
    }
}

fn linear(weights: LinearWeights<Tensor>) -> nn::Linear {
    nn::Linear {
        ws: weights.weight,
        bs: Some(weights.bias),
    }
}

fn layer_norm(weights: LayerNormWeights<Tensor>) -> LayerNorm {
    LayerNorm {
        ws: weights.weight,
        bs: weights.bias,
    }
}

fn linear_weights(layer: &nn::Linear) -> Result<LinearWeights<&Tensor>> {
    Ok(LinearWeights {
        weight: &layer.ws,
        bias: present(&layer.bs)?,
    })
}

fn layer_norm_weights(norm: &LayerNorm) -> LayerNormWeights<&Tensor> {
    LayerNormWeights {
        weight: &norm.ws,
        bias: &norm.bs,
    }
}

/// An optional parameter that the model built from `LmWeights` always has.
fn present(parameter: &Option<Tensor>) -> Result<&Tensor> {
    parameter
        .as_ref()
        .context("a bias parameter of the model is absent")
}

/// Inverted dropout (`torch.nn.functional.dropout`), skipped at p = 0 as
/// on the MLX twin.
fn dropout(x: &Tensor, p: f32, training: bool) -> Tensor {
    if p == 0.0 || !training {
        return x.shallow_clone();
    }
    x.dropout(p as f64, true)
}

/// mlx-examples' TransformerLM: embedding + sinusoidal positions, pre-norm
/// blocks under a causal mask, a final LayerNorm, an output projection.
#[derive(Debug)]
pub struct TransformerLm {
    /// [vocab, dim], looked up by `Tensor::embedding` (as `nn::Embedding`).
    embedding: Tensor,
    layers: Vec<Block>,
    ln: LayerNorm,
    out_proj: nn::Linear,
    /// [context, dim], shared with the MLX twin; not trained.
    positions: Tensor,
    /// The checkpoint's name of each parameter.
    names: ParameterNames,
}

impl TransformerLm {
    /// Builds the module tree from the checkpoint's weights, each uploaded
    /// in the runtime's dtype as it is read and made a trainable variable
    /// of `vs` (for the optimiser). The store names them by their order:
    /// tch refuses dotted names, and `names` already holds the
    /// checkpoint's, for [`TransformerLm::weights`].
    pub fn load(
        runtime: &TorchRuntime,
        vs: &nn::VarStore,
        config: &ModelConfig,
        checkpoint: &Path,
    ) -> Result<Self> {
        let (kind, device) = (runtime.kind(), runtime.tch_device());
        let root = vs.root();
        let NamedWeights { weights, names } = LmWeights::read(checkpoint, config, |tensor| {
            let tensor = from_host(&tensor).to_kind(kind).to_device(device);
            Ok(root.add(&vs.len().to_string(), tensor, true))
        })?;
        Ok(Self {
            embedding: weights.embedding,
            layers: (weights.layers.into_iter())
                .map(|layer| Block::new(layer, config))
                .collect(),
            ln: layer_norm(weights.ln),
            out_proj: linear(weights.out_proj),
            positions: from_host(&sinusoidal_positions(config.context, config.dim))
                .to_kind(kind)
                .to_device(device),
            names,
        })
    }

    /// The current parameters, in the shape they were loaded in.
    fn weights(&self) -> Result<LmWeights<&Tensor>> {
        Ok(LmWeights {
            embedding: &self.embedding,
            layers: self
                .layers
                .iter()
                .map(Block::weights)
                .collect::<Result<_>>()?,
            ln: layer_norm_weights(&self.ln),
            out_proj: linear_weights(&self.out_proj)?,
        })
    }

    /// Logits [batch, context, vocab] in the runtime's dtype.
    fn forward(&self, inputs: &Tensor, training: bool) -> Tensor {
        let t = inputs.size()[1];
        let positions = self.positions.narrow(0, 0, t);
        let mut x = Tensor::embedding(&self.embedding, inputs, -1, false, false) + positions;
        for layer in &self.layers {
            x = layer.forward(&x, training);
        }
        self.out_proj.forward(&self.ln.forward(&x))
    }

    /// Mean next-token cross-entropy; the logits are cast to float32 first
    /// (on both twins), so that bfloat16 runs do the softmax in float32.
    fn loss(&self, inputs: &Tensor, targets: &Tensor, training: bool) -> Tensor {
        let logits = self.forward(inputs, training);
        let vocab = logits.size()[2];
        logits
            .to_kind(Kind::Float)
            .reshape([-1, vocab])
            .cross_entropy_for_logits(&targets.reshape([-1]))
    }
}

/// One training step on device tensors: gradients cleared, forward,
/// backward, AdamW update; the loss stays on the device, detached. Nothing
/// is read back, so a CUDA graph can record it.
fn train_step_on(
    model: &TransformerLm,
    optimizer: &mut AdamW,
    mut reducer: Option<&mut Reducer>,
    inputs: &Tensor,
    targets: &Tensor,
) -> Result<Tensor> {
    optimizer.zero_grad()?;
    // Data-parallel: what DistributedDataParallel's forward does around
    // the model; backward then all-reduces the gradients bucket by bucket.
    if let Some(reducer) = reducer.as_deref_mut() {
        reducer.prepare_for_forward()?;
    }
    let loss = model.loss(inputs, targets, true);
    if let Some(reducer) = reducer {
        reducer.prepare_for_backward()?;
    }
    loss.backward();
    optimizer.step()?;
    // Detached: a loss that kept its autograd graph would keep the
    // parameters' gradient accumulators of this (eager, default-stream)
    // step alive, and a CUDA graph captured next on a side stream would
    // then have to wait on the default stream, which capture forbids.
    Ok(loss.detach())
}

/// The captured training step and its static inputs.
struct StepGraph {
    step: GraphedStep<Tensor>,
    inputs: Tensor,
    targets: Tensor,
}

/// A batch on the device (int64 token ids, as PyTorch's embedding and loss
/// want them), uploaded before timing.
pub struct DeviceBatch {
    inputs: Tensor,
    targets: Tensor,
}

/// The model, its optimiser and the step count.
pub struct Trainer {
    vs: nn::VarStore,
    model: TransformerLm,
    optimizer: AdamW,
    train: TrainConfig,
    step: usize,
    /// Best mode on CUDA: the whole step as a CUDA graph.
    graph: Option<StepGraph>,
    /// Data-parallel training (bench-distributed's `dp-train`): DDP's
    /// gradient engine.
    reducer: Option<Reducer>,
}

impl Trainer {
    /// Data-parallel training over `group` (bench-distributed's
    /// `dp-train`), as `DistributedDataParallel` runs it: c10d's Reducer
    /// over the parameters (buckets of `bucket_bytes`, DDP's default 25
    /// MiB, the first 1 MiB), whose all-reduces overlap backward. The step
    /// then runs eagerly: DDP under CUDA-graph capture is not done here
    /// (the row says so).
    pub fn data_parallel(&mut self, group: &Group, bucket_bytes: usize) -> Result<()> {
        // The store names parameters by their order: that order, on every rank.
        let mut variables: Vec<(usize, Tensor)> = (self.vs.variables().into_iter())
            .map(|(name, tensor)| Ok((name.parse()?, tensor)))
            .collect::<Result<_>>()?;
        variables.sort_by_key(|(index, _)| *index);
        let params: Vec<Tensor> = variables.into_iter().map(|(_, t)| t).collect();
        self.reducer = Some(Reducer::new(
            group,
            &params,
            bucket_bytes,
            DDP_FIRST_BUCKET_BYTES,
        )?);
        self.graph = None;
        Ok(())
    }
}

/// DDP's first bucket (`dist._DEFAULT_FIRST_BUCKET_BYTES`): small, so that
/// the first all-reduce starts early in backward.
const DDP_FIRST_BUCKET_BYTES: usize = 1 << 20;

impl LmTrainer for Trainer {
    type Runtime = TorchRuntime;
    type DeviceBatch = DeviceBatch;

    /// `seed` seeds the dropout masks.
    fn new(
        runtime: &TorchRuntime,
        config: &LmConfig,
        checkpoint: &Path,
        seed: u64,
        execution: Execution,
    ) -> Result<Self> {
        runtime.seed(seed)?;
        let device = runtime.tch_device();
        let vs = nn::VarStore::new(device);
        let model = TransformerLm::load(runtime, &vs, &config.model, checkpoint)?;
        let train = &config.train;
        let kind = AdamWKind::for_execution(execution);
        let optimizer = AdamW::new(&vs, kind, train.adamw_hyper(), train.learning_rate_at(1))?;
        let graph =
            (execution == Execution::Best && cuda_graphs_available(device).is_ok()).then(|| {
                let shape = [train.batch_size as i64, config.model.context as i64];
                StepGraph {
                    // One eager step first: cuBLAS and the kernels' choices start
                    // outside the capture.
                    step: GraphedStep::new(device, 1),
                    inputs: Tensor::zeros(shape, (Kind::Int64, device)),
                    targets: Tensor::zeros(shape, (Kind::Int64, device)),
                }
            });
        Ok(Self {
            vs,
            model,
            optimizer,
            train: train.clone(),
            step: 0,
            graph,
            reducer: None,
        })
    }

    /// The row's `execution=`.
    fn execution(&self) -> &'static str {
        if self.graph.is_some() {
            "cuda-graph"
        } else {
            "eager"
        }
    }

    /// The row's `optimizer=`.
    fn optimizer(&self) -> &'static str {
        self.optimizer.kind().name()
    }

    /// Copies a host batch to the device (untimed set-up).
    fn upload(&self, batch: &Batch) -> Result<DeviceBatch> {
        let shape = [batch.batch_size as i64, batch.context as i64];
        let ids = |tokens: &[u32]| -> Result<Tensor> {
            let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
            Ok(Tensor::from_slice(&ids)
                .reshape(shape)
                .to_device(self.vs.device()))
        };
        Ok(DeviceBatch {
            inputs: ids(&batch.inputs)?,
            targets: ids(&batch.targets)?,
        })
    }

    /// One training step: forward, backward, AdamW update.
    /// Returns the step's loss (before the update).
    fn train_step(&mut self, batch: &DeviceBatch) -> Result<f32> {
        self.step += 1;
        self.optimizer
            .set_lr(self.train.learning_rate_at(self.step));
        let (model, optimizer) = (&self.model, &mut self.optimizer);
        let loss = match &mut self.graph {
            Some(graph) => {
                graph.inputs.copy_(&batch.inputs);
                graph.targets.copy_(&batch.targets);
                let (inputs, targets) = (&graph.inputs, &graph.targets);
                graph
                    .step
                    .run(|| train_step_on(model, optimizer, None, inputs, targets))?
                    .shallow_clone()
            }
            None => train_step_on(
                model,
                optimizer,
                self.reducer.as_mut(),
                &batch.inputs,
                &batch.targets,
            )?,
        };
        Ok(loss.double_value(&[]) as f32)
    }

    /// Mean loss over held-out batches, without dropout or gradients.
    fn eval_loss(&mut self, batches: &[DeviceBatch]) -> Result<f32> {
        let _no_grad = tch::no_grad_guard();
        let mut total = 0.0;
        for batch in batches {
            let loss = self.model.loss(&batch.inputs, &batch.targets, false);
            total += loss.double_value(&[]) as f32;
        }
        Ok(total / batches.len() as f32)
    }

    /// The current weights by name, as float32 on the host.
    fn weights(&self) -> Result<Vec<(String, HostTensor)>> {
        let model = &self.model;
        let weights = model.weights()?;
        let named = model.names.label(&weights)?;
        named
            .into_iter()
            .map(|(name, tensor)| Ok((name.to_owned(), to_host_f32(tensor)?)))
            .collect()
    }
}
