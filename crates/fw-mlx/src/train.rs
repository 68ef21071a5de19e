//! A compiled MLX training step with [`BiasCorrectedAdamW`], for every twin
//! that trains. The twin gives what its step reads and writes (model,
//! optimiser, anything else) and the step itself; here the step is traced
//! once, given the AdamW scalars of each step, and evaluated together with
//! the new state.

use anyhow::Result;
use mlx_rs::error::{Exception, StateProjectionError};
use mlx_rs::module::ModuleParameters;
use mlx_rs::transforms::compile::compile_with_state;
use mlx_rs::transforms::eval;
use mlx_rs::utils::{StateProjection, Updatable};
use mlx_rs::Array;

use crate::optim::{project_model, BiasCorrectedAdamW};

/// A twin's training step as `compile` traces it: the twin's inputs, then
/// the three AdamW scalars (`StepScalars::from_args`); result [loss].
pub type TrainingStep<S> = fn(&mut S, &[Array]) -> Result<Vec<Array>, Exception>;

type CompiledStep<S> = Box<dyn FnMut(&mut S, &[Array]) -> Result<Vec<Array>, Exception>>;

/// A training state with its step, compiled once. The state is all that
/// the step reads and writes besides its arguments (model, optimiser,
/// anything else).
pub struct CompiledTraining<S> {
    state: S,
    step: CompiledStep<S>,
    /// The state's optimiser.
    optimizer: fn(&mut S) -> &mut BiasCorrectedAdamW,
}

impl<S: Updatable + 'static> CompiledTraining<S> {
    /// Evaluates the initial state, so that no timed step pays for it, and
    /// compiles `step` (in eager mode MLX_DISABLE_COMPILE makes that a
    /// no-op).
    pub fn new(
        mut state: S,
        step: TrainingStep<S>,
        optimizer: fn(&mut S) -> &mut BiasCorrectedAdamW,
    ) -> Result<Self> {
        eval(state.state_projection()?.into_entries().map(|(_, a)| a))?;
        Ok(Self {
            state,
            step: Box::new(compile_with_state(step, false)),
            optimizer,
        })
    }

    /// One step at learning rate `lr` on `inputs`: forward, backward and
    /// AdamW in one graph, evaluated once with the new parameters and
    /// optimiser state. Returns the loss (before the update).
    pub fn step(&mut self, inputs: impl IntoIterator<Item = Array>, lr: f64) -> Result<Array> {
        let scalars = (self.optimizer)(&mut self.state).next_step(lr).into_args();
        let args: Vec<Array> = inputs.into_iter().chain(scalars).collect();
        let loss = (self.step)(&mut self.state, &args)?.remove(0);
        let state = self.state.state_projection()?;
        eval(
            [&loss]
                .into_iter()
                .chain(state.into_entries().map(|(_, a)| a)),
        )?;
        Ok(loss)
    }

    pub fn state(&self) -> &S {
        &self.state
    }

    pub fn state_mut(&mut self) -> &mut S {
        &mut self.state
    }
}

/// A compiled step's state of a model and its optimiser (`model.NAME`,
/// `m.NAME`, `v.NAME`): a twin's `Updatable` adds whatever else its step
/// keeps.
pub fn project_training<'a, M: ModuleParameters>(
    model: &'a mut M,
    optimizer: &'a mut BiasCorrectedAdamW,
) -> Result<StateProjection<'a>, StateProjectionError> {
    let mut projection = StateProjection::new();
    project_model(model, &mut projection)?;
    optimizer.project_state(&mut projection)?;
    Ok(projection)
}

/// The row's `optimizer=` for a twin of `execution`: the update's
/// element-wise work is traced into the compiled step, which fuses it;
/// eager mode runs it per parameter.
pub fn optimizer_label(execution: &str) -> &'static str {
    if execution.starts_with("compiled") {
        "fused (compiled into the step)"
    } else {
        "per-parameter"
    }
}
