//! Optimiser settings that both twins of a training benchmark share.

/// AdamW's hyper-parameters besides the learning rate (PyTorch's meaning:
/// bias-corrected moments, decoupled weight decay).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWHyper {
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub eps: f64,
}
