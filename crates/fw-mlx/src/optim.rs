//! AdamW for compiled MLX training steps, with PyTorch's update (bias
//! correction, decoupled weight decay), for every twin that trains.
//!
//! mlx-rs's `AdamW` differs in two ways that matter here: it has no bias
//! correction (MLX's convention), and its float32 hyperparameter arrays
//! turn bfloat16 weights and moments into float32. Here the moments are
//! stored in the weights' dtype, as PyTorch stores them, the arithmetic is
//! float32 (as PyTorch's kernels do for bfloat16), and the moments exist
//! from the start, so that a compiled step sees the same state layout on
//! every call. The scalars that change with the step are arrays passed to
//! the compiled step, so that it is traced once.

use mlx_rs::error::{Exception, StateProjectionError};
use mlx_rs::module::{FlattenedModuleParam, ModuleParameters};
use mlx_rs::ops::zeros_like;
use mlx_rs::optimizers::State;
use mlx_rs::utils::StateProjection;
use mlx_rs::{Array, Dtype};

pub use bench_core::AdamWHyper;

/// The scalars of one step, as arrays.
pub struct StepScalars {
    pub decay: Array,
    pub step_size: Array,
    pub sqrt_bias_correction2: Array,
}

impl StepScalars {
    /// The three arrays, in the order [`StepScalars::from_args`] reads.
    pub fn into_args(self) -> [Array; 3] {
        [self.decay, self.step_size, self.sqrt_bias_correction2]
    }

    /// The scalars from a compiled step's last three arguments.
    pub fn from_args(args: &[Array]) -> Result<Self, Exception> {
        match args {
            [.., decay, step_size, sqrt_bias_correction2] => Ok(Self {
                decay: decay.clone(),
                step_size: step_size.clone(),
                sqrt_bias_correction2: sqrt_bias_correction2.clone(),
            }),
            _ => Err(Exception::custom(
                "a training step takes the 3 AdamW scalars last",
            )),
        }
    }
}

/// Bias-corrected AdamW over a model's parameters.
pub struct BiasCorrectedAdamW {
    hyper: AdamWHyper,
    /// (m, v) per parameter name.
    moments: State<(Array, Array)>,
    step: usize,
}

impl BiasCorrectedAdamW {
    pub fn new<M: ModuleParameters>(hyper: AdamWHyper, model: &M) -> Result<Self, Exception> {
        let moments = model
            .parameters()
            .flatten()
            .into_iter()
            .map(|(name, p)| Ok((name, (zeros_like(p)?, zeros_like(p)?))))
            .collect::<Result<_, Exception>>()?;
        Ok(Self {
            hyper,
            moments,
            step: 0,
        })
    }

    /// Steps taken.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// Advances the step count and gives its scalars at learning rate `lr`.
    pub fn next_step(&mut self, lr: f64) -> StepScalars {
        self.step += 1;
        let h = &self.hyper;
        let t = self.step as i32;
        StepScalars {
            decay: scalar(1.0 - lr * h.weight_decay),
            step_size: scalar(lr / (1.0 - h.beta1.powi(t))),
            sqrt_bias_correction2: scalar((1.0 - h.beta2.powi(t)).sqrt()),
        }
    }

    /// One update of every parameter that has a gradient.
    pub fn update<M: ModuleParameters>(
        &mut self,
        model: &mut M,
        gradients: &FlattenedModuleParam,
        scalars: &StepScalars,
    ) -> Result<(), Exception> {
        let h = &self.hyper;
        let (b1, b2, eps) = (scalar(h.beta1), scalar(h.beta2), scalar(h.eps));
        let (one_minus_b1, one_minus_b2) = (scalar(1.0 - h.beta1), scalar(1.0 - h.beta2));
        let mut parameters = model.parameters_mut().flatten();
        for (name, g) in gradients {
            let (Some(p), Some((m, v))) = (parameters.get_mut(name), self.moments.get_mut(name))
            else {
                continue;
            };
            let dtype = p.dtype();
            let f32 = |a: &Array| a.as_dtype(Dtype::Float32);
            let g = f32(g)?;
            let new_m = f32(m)?.multiply(&b1)?.add(g.multiply(&one_minus_b1)?)?;
            let new_v = f32(v)?
                .multiply(&b2)?
                .add(g.square()?.multiply(&one_minus_b2)?)?;
            let denominator = new_v
                .sqrt()?
                .divide(&scalars.sqrt_bias_correction2)?
                .add(&eps)?;
            let new_p = f32(p)?
                .multiply(&scalars.decay)?
                .subtract(scalars.step_size.multiply(new_m.divide(&denominator)?)?)?;
            **p = new_p.as_dtype(dtype)?;
            *m = new_m.as_dtype(dtype)?;
            *v = new_v.as_dtype(dtype)?;
        }
        Ok(())
    }

    /// Adds the moments to a compiled step's state (as `m.NAME`, `v.NAME`).
    pub fn project_state<'a>(
        &'a mut self,
        projection: &mut StateProjection<'a>,
    ) -> Result<(), StateProjectionError> {
        for (name, (m, v)) in self.moments.iter_mut() {
            projection.required(format!("m.{name}"), m)?;
            projection.required(format!("v.{name}"), v)?;
        }
        Ok(())
    }
}

/// Adds a model's parameters to a compiled step's state (as `model.NAME`).
pub fn project_model<'a, M: ModuleParameters>(
    model: &'a mut M,
    projection: &mut StateProjection<'a>,
) -> Result<(), StateProjectionError> {
    for (name, p) in model.parameters_mut().flatten() {
        projection.required(format!("model.{name}"), p)?;
    }
    Ok(())
}

fn scalar(x: f64) -> Array {
    Array::from_f32(x as f32)
}
