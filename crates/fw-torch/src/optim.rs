//! AdamW as PyTorch users run it when speed matters:
//! `torch.optim.AdamW(fused=True)`, one kernel over every parameter
//! (libtorch's `_fused_adamw_`, through the shim), and the per-parameter
//! `torch::optim::AdamW` that tch binds, for eager mode. Both take the same
//! update (bias correction, decoupled weight decay).

use anyhow::Result;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

pub use crate::shim::AdamWHyper;
use crate::shim::{clear_grad, fused_adamw};

/// Which AdamW implementation a row ran, as its `optimizer=` setting says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdamWKind {
    /// One fused kernel for all parameters (`AdamW(fused=True)`).
    Fused,
    /// libtorch's `torch::optim::AdamW`: a few kernels per parameter.
    PerParameter,
}

impl AdamWKind {
    /// PyTorch's fast path fuses the update; eager mode runs libtorch's
    /// per-parameter AdamW.
    pub fn for_execution(execution: bench_core::Execution) -> Self {
        match execution {
            bench_core::Execution::Best => Self::Fused,
            bench_core::Execution::Eager => Self::PerParameter,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Fused => "fused",
            Self::PerParameter => "per-parameter",
        }
    }
}

/// AdamW over a fixed list of parameters.
pub enum AdamW {
    Fused(FusedAdamW),
    PerParameter(nn::Optimizer),
}

impl AdamW {
    /// AdamW over every trainable variable of `vs`.
    pub fn new(vs: &nn::VarStore, kind: AdamWKind, hyper: AdamWHyper, lr: f64) -> Result<Self> {
        Ok(match kind {
            AdamWKind::Fused => Self::Fused(FusedAdamW::new(vs.trainable_variables(), hyper, lr)),
            AdamWKind::PerParameter => Self::PerParameter(
                nn::AdamW {
                    beta1: hyper.beta1,
                    beta2: hyper.beta2,
                    wd: hyper.weight_decay,
                    eps: hyper.eps,
                    amsgrad: false,
                }
                .build(vs, lr)?,
            ),
        })
    }

    pub fn kind(&self) -> AdamWKind {
        match self {
            Self::Fused(_) => AdamWKind::Fused,
            Self::PerParameter(_) => AdamWKind::PerParameter,
        }
    }

    /// Sets the learning rate of the next steps (outside any CUDA graph).
    pub fn set_lr(&mut self, lr: f64) {
        match self {
            Self::Fused(adamw) => adamw.set_lr(lr),
            Self::PerParameter(optimizer) => optimizer.set_lr(lr),
        }
    }

    /// Forgets the gradients before a backward pass: set to None (fused,
    /// as `zero_grad(set_to_none=True)`), or zeroed (tch's `zero_grad`).
    pub fn zero_grad(&mut self) -> Result<()> {
        match self {
            Self::Fused(adamw) => adamw.clear_grads(),
            Self::PerParameter(optimizer) => {
                optimizer.zero_grad();
                Ok(())
            }
        }
    }

    /// One update from the parameters' gradients.
    pub fn step(&mut self) -> Result<()> {
        match self {
            Self::Fused(adamw) => adamw.step(),
            Self::PerParameter(optimizer) => {
                optimizer.step();
                Ok(())
            }
        }
    }
}

/// `torch.optim.AdamW(fused=True)` with its state on the parameters'
/// device: the step count and (on CUDA) the learning rate are device
/// tensors, as PyTorch keeps them for `capturable` optimizers, so one CUDA
/// graph of a training step stays valid for every later step.
pub struct FusedAdamW {
    params: Vec<Tensor>,
    exp_avgs: Vec<Tensor>,
    exp_avg_sqs: Vec<Tensor>,
    /// float32 scalar, shared by every parameter.
    step: Tensor,
    /// float32 scalar on CUDA; None elsewhere (the CPU kernel reads a double).
    lr_tensor: Option<Tensor>,
    lr: f64,
    hyper: AdamWHyper,
}

impl FusedAdamW {
    pub fn new(params: Vec<Tensor>, hyper: AdamWHyper, lr: f64) -> Self {
        let device = params.first().map_or(Device::Cpu, Tensor::device);
        let moments = || params.iter().map(Tensor::zeros_like).collect::<Vec<_>>();
        let lr_tensor = device
            .is_cuda()
            .then(|| Tensor::full([], lr, (Kind::Float, device)));
        Self {
            exp_avgs: moments(),
            exp_avg_sqs: moments(),
            step: Tensor::zeros([], (Kind::Float, device)),
            lr_tensor,
            lr,
            hyper,
            params,
        }
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
        if let Some(tensor) = &mut self.lr_tensor {
            let _ = tensor.fill_(lr);
        }
    }

    pub fn clear_grads(&self) -> Result<()> {
        self.params.iter().try_for_each(clear_grad)
    }

    pub fn step(&mut self) -> Result<()> {
        let _no_grad = tch::no_grad_guard();
        let _ = self.step.g_add_scalar_(1.0);
        fused_adamw(
            &self.params,
            (&self.exp_avgs, &self.exp_avg_sqs),
            &self.step,
            (self.lr_tensor.as_ref(), self.lr),
            self.hyper,
        )
    }
}
