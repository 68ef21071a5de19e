//! PyTorch twin: BERT with a classification head on tch modules over one
//! VarStore; a training step is forward, backward and AdamW. The
//! parameters and AdamW state are float32; the forward and backward run in
//! the compute dtype (see [`linear`]). At its best (the default) the step
//! runs as PyTorch's whole-network CUDA graph recipe: fused AdamW, and on
//! CUDA the whole step captured once and replayed with each batch copied
//! into static inputs; eager mode runs libtorch's per-parameter AdamW.

use anyhow::Result;
use bench_core::host::HostTensor;
use bench_core::Execution;
use fw_torch::{
    cuda_graphs_available, from_host, to_host_f32, AdamW, AdamWKind, GraphedStep, TorchRuntime,
};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use crate::config::BertConfig;
use crate::tokens::{LabelledBatch, TokenBatch};
use crate::weights::{
    BertWeights, EmbeddingWeights, LayerNormWeights, LayerWeights, LinearWeights,
};
use crate::workload::OptimizerSettings;
use crate::FineTune;

/// Token embeddings plus learned positions and token types, normalised.
#[derive(Debug)]
struct Embeddings {
    word: nn::Embedding,
    position: nn::Embedding,
    token_type: nn::Embedding,
    norm: LayerNorm,
}

/// One post-LN encoder layer: x = LN(x + attention(x)); x = LN(x + MLP(x)).
#[derive(Debug)]
struct EncoderLayer {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    attention_output: nn::Linear,
    attention_norm: LayerNorm,
    intermediate: nn::Linear,
    output: nn::Linear,
    output_norm: LayerNorm,
    heads: i64,
}

/// Layer normalisation's parameters (tch's `nn::LayerNorm` keeps its eps
/// private, and the forward needs it to cast the weights).
#[derive(Debug)]
struct LayerNorm {
    ws: Tensor,
    bs: Tensor,
    eps: f64,
}

/// BERT (encoder and pooler) with a linear classifier on the pooled [CLS].
#[derive(Debug)]
pub struct BertClassifier {
    embeddings: Embeddings,
    layers: Vec<EncoderLayer>,
    pooler: nn::Linear,
    classifier: nn::Linear,
    /// The dtype of the forward and backward: float32, or bfloat16.
    compute: Kind,
    /// Holds every parameter, named by the fields above, for the optimiser.
    vs: nn::VarStore,
}

/// A batch on the device: ids and token types [batch, seq], and the
/// attention mask [batch, 1, 1, seq] (true: a real token to attend to).
struct Inputs {
    ids: Tensor,
    type_ids: Tensor,
    mask: Tensor,
}

impl Inputs {
    fn upload(tokens: &TokenBatch, device: Device) -> Self {
        let (b, s) = (tokens.batch as i64, tokens.seq_len as i64);
        let upload = |values: &[i32], shape: &[i64]| {
            Tensor::from_slice(values)
                .reshape(shape)
                .to_kind(Kind::Int64)
                .to_device(device)
        };
        Self {
            ids: upload(&tokens.ids, &[b, s]),
            type_ids: upload(&tokens.type_ids, &[b, s]),
            mask: upload(&tokens.mask, &[b, 1, 1, s]).ne(0),
        }
    }
}

impl BertClassifier {
    /// The weights (with their classifier head) in float32, as variables
    /// of one VarStore, computing in the runtime's dtype.
    pub fn new(runtime: &TorchRuntime, config: &BertConfig, weights: &BertWeights) -> Result<Self> {
        let vs = nn::VarStore::new(runtime.tch_device());
        let root = vs.root();
        let eps = config.layer_norm_eps;
        let layers = &root / "layers";
        let model = Self {
            embeddings: Embeddings::new(&root / "embeddings", &weights.embeddings, eps)?,
            layers: weights
                .layers
                .iter()
                .enumerate()
                .map(|(i, layer)| EncoderLayer::new(&layers / i, layer, config))
                .collect(),
            pooler: new_linear(&root / "pooler", &weights.pooler),
            classifier: new_linear(&root / "classifier", &weights.classifier),
            compute: runtime.kind(),
            vs,
        };
        Ok(model)
    }

    /// The last hidden state [batch, seq, hidden], as float32 on the host.
    pub fn hidden_states(&mut self, tokens: &TokenBatch) -> Result<HostTensor> {
        let _no_grad = tch::no_grad_guard();
        let inputs = Inputs::upload(tokens, self.vs.device());
        to_host_f32(&self.encode(&inputs))
    }

    /// Class logits [batch, classes], as float32 on the host.
    pub fn logits(&mut self, tokens: &TokenBatch) -> Result<HostTensor> {
        let _no_grad = tch::no_grad_guard();
        let inputs = Inputs::upload(tokens, self.vs.device());
        to_host_f32(&self.forward_logits(&inputs))
    }

    fn encode(&self, inputs: &Inputs) -> Tensor {
        let mut x = self.embeddings.forward(inputs, self.compute);
        for layer in &self.layers {
            x = layer.forward(&x, &inputs.mask);
        }
        x
    }

    fn forward_logits(&self, inputs: &Inputs) -> Tensor {
        let hidden = self.encode(inputs);
        let cls = hidden.select(1, 0);
        let pooled = linear(&self.pooler, &cls).tanh();
        linear(&self.classifier, &pooled)
    }

    /// Mean cross-entropy of the batch, computed in float32.
    fn loss(&self, inputs: &Inputs, labels: &Tensor) -> Tensor {
        let logits = self.forward_logits(inputs).to_kind(Kind::Float);
        logits.cross_entropy_for_logits(labels)
    }
}

impl Embeddings {
    fn new(path: nn::Path, weights: &EmbeddingWeights, eps: f64) -> Result<Self> {
        Ok(Self {
            word: new_embedding(&path / "word", &weights.word)?,
            position: new_embedding(&path / "position", &weights.position)?,
            token_type: new_embedding(&path / "token_type", &weights.token_type)?,
            norm: new_layer_norm(&path / "norm", &weights.norm, eps),
        })
    }

    /// Sets the dtype that the rest of the forward pass follows.
    fn forward(&self, inputs: &Inputs, compute: Kind) -> Tensor {
        let seq_len = inputs.ids.size()[1];
        let positions = Tensor::arange(seq_len, (Kind::Int64, inputs.ids.device()));
        let x = self.word.forward(&inputs.ids)
            + self.position.forward(&positions)
            + self.token_type.forward(&inputs.type_ids);
        layer_norm(&self.norm, &x.to_kind(compute))
    }
}

impl EncoderLayer {
    fn new(path: nn::Path, weights: &LayerWeights, config: &BertConfig) -> Self {
        let eps = config.layer_norm_eps;
        Self {
            query: new_linear(&path / "query", &weights.query),
            key: new_linear(&path / "key", &weights.key),
            value: new_linear(&path / "value", &weights.value),
            attention_output: new_linear(&path / "attention_output", &weights.attention_output),
            attention_norm: new_layer_norm(&path / "attention_norm", &weights.attention_norm, eps),
            intermediate: new_linear(&path / "intermediate", &weights.intermediate),
            output: new_linear(&path / "output", &weights.output),
            output_norm: new_layer_norm(&path / "output_norm", &weights.output_norm, eps),
            heads: config.num_attention_heads as i64,
        }
    }

    fn forward(&self, x: &Tensor, mask: &Tensor) -> Tensor {
        let (b, s, h) = x.size3().expect("hidden states are [batch, seq, hidden]");
        let head_dim = h / self.heads;
        // [b, s, h] -> [b, heads, s, head_dim]
        let split = |t: Tensor| t.reshape([b, s, self.heads, head_dim]).transpose(1, 2);
        let q = split(linear(&self.query, x));
        let k = split(linear(&self.key, x));
        let v = split(linear(&self.value, x));
        let scale = 1.0 / (head_dim as f64).sqrt();
        let attended =
            Tensor::scaled_dot_product_attention(&q, &k, &v, Some(mask), 0.0, false, scale, false)
                .transpose(1, 2)
                .reshape([b, s, h]);
        let x = layer_norm(
            &self.attention_norm,
            &(linear(&self.attention_output, &attended) + x),
        );
        let inner = linear(&self.intermediate, &x).gelu("none");
        layer_norm(&self.output_norm, &(linear(&self.output, &inner) + &x))
    }
}

/// A linear layer of float32 variables at `path` holding `weights`.
fn new_linear(path: nn::Path, weights: &LinearWeights) -> nn::Linear {
    nn::Linear {
        ws: path.var_copy("weight", &from_host(&weights.weight)),
        bs: Some(path.var_copy("bias", &from_host(&weights.bias))),
    }
}

fn new_layer_norm(path: nn::Path, weights: &LayerNormWeights, eps: f64) -> LayerNorm {
    LayerNorm {
        ws: path.var_copy("weight", &from_host(&weights.weight)),
        bs: path.var_copy("bias", &from_host(&weights.bias)),
        eps,
    }
}

fn new_embedding(path: nn::Path, table: &HostTensor) -> Result<nn::Embedding> {
    let table = from_host(table);
    let (count, width) = table.size2()?;
    let mut embedding = nn::embedding(path, count, width, Default::default());
    tch::no_grad(|| embedding.ws.copy_(&table));
    Ok(embedding)
}

/// x W^T + b in the dtype of `x`: the float32 weights are cast where they
/// are used, as autocast does, so that a bfloat16 forward and backward
/// return float32 gradients to float32 weights. A no-op cast in float32.
fn linear(layer: &nn::Linear, x: &Tensor) -> Tensor {
    let kind = x.kind();
    x.linear(
        &layer.ws.to_kind(kind),
        layer.bs.as_ref().map(|b| b.to_kind(kind)),
    )
}

/// Layer normalisation in the dtype of `x` (libtorch accumulates in
/// float32), with the float32 weights cast as in [`linear`].
fn layer_norm(norm: &LayerNorm, x: &Tensor) -> Tensor {
    let kind = x.kind();
    let width = *x
        .size()
        .last()
        .expect("hidden states have a last dimension");
    x.layer_norm(
        [width],
        Some(norm.ws.to_kind(kind)),
        Some(norm.bs.to_kind(kind)),
        norm.eps,
        true,
    )
}

/// AdamW with bias correction and decoupled weight decay: fused in best
/// mode, libtorch's per-parameter `torch::optim::AdamW` in eager mode.
fn adamw(vs: &nn::VarStore, settings: &OptimizerSettings, execution: Execution) -> Result<AdamW> {
    AdamW::new(
        vs,
        AdamWKind::for_execution(execution),
        settings.hyper(),
        settings.learning_rate,
    )
}

/// One training step on device tensors: gradients cleared, forward,
/// backward, AdamW update; the loss stays on the device, detached. Nothing
/// is read back, so a CUDA graph can record it.
fn train_step_on(
    model: &BertClassifier,
    optimizer: &mut AdamW,
    inputs: &Inputs,
    labels: &Tensor,
) -> Result<Tensor> {
    optimizer.zero_grad()?;
    let loss = model.loss(inputs, labels);
    loss.backward();
    optimizer.step()?;
    // Detached: a loss that kept its autograd graph would keep the
    // parameters' gradient accumulators of this (eager, default-stream)
    // step alive, and a CUDA graph captured next on a side stream would
    // then have to wait on the default stream, which capture forbids.
    Ok(loss.detach())
}

/// The captured training step and its static inputs (one batch shape).
struct StepGraph {
    step: GraphedStep<Tensor>,
    inputs: Inputs,
    labels: Tensor,
}

impl StepGraph {
    /// Whether a batch has the captured batch's shape (one that does not
    /// runs eagerly).
    fn fits(&self, inputs: &Inputs) -> bool {
        inputs.ids.size() == self.inputs.ids.size()
    }

    /// Copies a batch into the static inputs.
    fn fill(&mut self, inputs: &Inputs, labels: &Tensor) {
        self.inputs.ids.copy_(&inputs.ids);
        self.inputs.type_ids.copy_(&inputs.type_ids);
        self.inputs.mask.copy_(&inputs.mask);
        self.labels.copy_(labels);
    }
}

/// Fine-tunes a [`BertClassifier`] with AdamW.
pub struct Trainer {
    model: BertClassifier,
    optimizer: AdamW,
    loss: Option<Tensor>,
    /// Best mode on CUDA: whether steps run as a CUDA graph, and the graph
    /// once the first batch has given its shape.
    graphs: bool,
    graph: Option<StepGraph>,
}

impl Trainer {
    pub fn new(
        runtime: &TorchRuntime,
        config: &BertConfig,
        weights: &BertWeights,
        optimizer: &OptimizerSettings,
        execution: Execution,
    ) -> Result<Self> {
        let model = BertClassifier::new(runtime, config, weights)?;
        let optimizer = adamw(&model.vs, optimizer, execution)?;
        let graphs =
            execution == Execution::Best && cuda_graphs_available(runtime.tch_device()).is_ok();
        Ok(Self {
            model,
            optimizer,
            loss: None,
            graphs,
            graph: None,
        })
    }
}

impl FineTune for Trainer {
    /// One training step: forward, backward, AdamW.
    fn step(&mut self, batch: &LabelledBatch) -> Result<()> {
        let device = self.model.vs.device();
        let inputs = Inputs::upload(&batch.tokens, device);
        let labels = Tensor::from_slice(&batch.labels)
            .to_kind(Kind::Int64)
            .to_device(device);
        if self.graphs && self.graph.is_none() {
            self.graph = Some(StepGraph {
                // One eager step first: cuBLAS and the kernels' choices
                // start outside the capture.
                step: GraphedStep::new(device, 1),
                inputs: Inputs {
                    ids: inputs.ids.zeros_like(),
                    type_ids: inputs.type_ids.zeros_like(),
                    mask: inputs.mask.zeros_like(),
                },
                labels: labels.zeros_like(),
            });
        }
        let (model, optimizer) = (&self.model, &mut self.optimizer);
        let graph = self.graph.as_mut().filter(|graph| graph.fits(&inputs));
        let loss = match graph {
            Some(graph) => {
                graph.fill(&inputs, &labels);
                let (inputs, labels) = (&graph.inputs, &graph.labels);
                graph
                    .step
                    .run(|| train_step_on(model, optimizer, inputs, labels))?
                    .shallow_clone()
            }
            None => train_step_on(model, optimizer, &inputs, &labels)?,
        };
        self.loss = Some(loss.detach());
        Ok(())
    }

    fn execution(&self) -> &'static str {
        if self.graphs {
            "cuda-graph"
        } else {
            "eager"
        }
    }

    fn optimizer(&self) -> &'static str {
        self.optimizer.kind().name()
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
        Ok(loss.double_value(&[]) as f32)
    }
}
