//! The model described without a framework: every parameter's name, shape
//! and initial distribution, and the sinusoidal position table. Both twins
//! build the same names; the checkpoint holds the same values for both.

use bench_core::host::HostTensor;

use crate::config::ModelConfig;

/// MLX's default initialisers, which mlx-examples' TransformerLM uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// `nn.Embedding`: normal with standard deviation sqrt(1 / dim).
    Normal { std: f32 },
    /// `nn.Linear`: uniform in [-sqrt(1 / in), sqrt(1 / in)).
    Uniform { bound: f32 },
    /// `nn.LayerNorm` weight.
    Ones,
    /// `nn.LayerNorm` bias.
    Zeros,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParameterSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

/// Every trainable parameter, in model order. The names are those of the
/// twins' module trees (and of mlx-examples' TransformerLM, flattened).
pub fn parameter_specs(config: &ModelConfig) -> Vec<ParameterSpec> {
    let (v, d, f) = (config.vocab_size, config.dim, config.ffn_dim);
    let mut specs = vec![spec(
        "embedding.weight",
        &[v, d],
        Init::Normal {
            std: (1.0 / d as f32).sqrt(),
        },
    )];
    for layer in 0..config.layers {
        let name = |rest: &str| format!("layers.{layer}.{rest}");
        specs.extend(layer_norm(&name("ln1"), d));
        // MLX's MultiHeadAttention has no projection biases by default.
        for projection in ["query_proj", "key_proj", "value_proj", "out_proj"] {
            specs.push(spec(
                &name(&format!("attention.{projection}.weight")),
                &[d, d],
                linear_init(d),
            ));
        }
        specs.extend(layer_norm(&name("ln2"), d));
        specs.extend(linear(&name("linear1"), d, f));
        specs.extend(linear(&name("linear2"), f, d));
    }
    specs.extend(layer_norm("ln", d));
    specs.extend(linear("out_proj", d, v));
    specs
}

fn spec(name: &str, shape: &[usize], init: Init) -> ParameterSpec {
    ParameterSpec {
        name: name.to_owned(),
        shape: shape.to_vec(),
        init,
    }
}

fn linear_init(input: usize) -> Init {
    Init::Uniform {
        bound: (1.0 / input as f32).sqrt(),
    }
}

fn linear(prefix: &str, input: usize, output: usize) -> [ParameterSpec; 2] {
    [
        spec(
            &format!("{prefix}.weight"),
            &[output, input],
            linear_init(input),
        ),
        spec(&format!("{prefix}.bias"), &[output], linear_init(input)),
    ]
}

fn layer_norm(prefix: &str, dim: usize) -> [ParameterSpec; 2] {
    [
        spec(&format!("{prefix}.weight"), &[dim], Init::Ones),
        spec(&format!("{prefix}.bias"), &[dim], Init::Zeros),
    ]
}

/// LayerNorm epsilon of both twins (MLX's and PyTorch's default).
pub const LAYER_NORM_EPS: f32 = 1e-5;

/// The position table [context, dim] that both twins add to the token
/// embeddings: MLX's `nn.SinusoidalPositionalEncoding(dim)` at positions
/// 0..context (sines then cosines, frequencies from 1e-4 to 1 spaced
/// geometrically, scale sqrt(2 / dim)). Computed once here, in float64, so
/// the twins share one table instead of two implementations of it.
pub fn sinusoidal_positions(context: usize, dim: usize) -> HostTensor {
    let half = dim / 2;
    let (min_freq, max_freq) = (1e-4f64.ln(), 1f64.ln());
    let sigmas: Vec<f64> = (0..half)
        .map(|i| {
            let one_zero = 1.0 - i as f64 / (half - 1) as f64;
            (one_zero * (max_freq - min_freq) + min_freq).exp()
        })
        .collect();
    let scale = (2.0 / dim as f64).sqrt();
    let mut data = Vec::with_capacity(context * dim);
    for position in 0..context {
        let angles = sigmas.iter().map(|sigma| position as f64 * sigma);
        data.extend(angles.clone().map(|a| (a.sin() * scale) as f32));
        data.extend(angles.map(|a| (a.cos() * scale) as f32));
    }
    HostTensor {
        shape: vec![context, dim],
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ModelConfig {
        ModelConfig {
            vocab_size: 10,
            layers: 2,
            dim: 8,
            heads: 2,
            ffn_dim: 16,
            context: 4,
            dropout: 0.0,
        }
    }

    #[test]
    fn names_and_shapes_follow_the_module_tree() {
        let specs = parameter_specs(&tiny());
        // embedding + 2 x (2 norms x 2 + 4 projections + 2 linears x 2) + norm + output
        assert_eq!(specs.len(), 1 + 2 * 12 + 2 + 2);
        let find = |name: &str| specs.iter().find(|s| s.name == name).unwrap();
        assert_eq!(find("embedding.weight").shape, vec![10, 8]);
        assert_eq!(find("layers.1.linear1.weight").shape, vec![16, 8]);
        assert_eq!(find("layers.1.linear2.bias").shape, vec![8]);
        assert_eq!(find("layers.0.attention.key_proj.weight").shape, vec![8, 8]);
        assert_eq!(find("out_proj.weight").shape, vec![10, 8]);
        assert_eq!(find("ln.weight").init, Init::Ones);
        // 80 + 2 x (16 + 4 x 64 + 16 + 144 + 136) + 16 + 90
        assert_eq!(tiny().parameter_count(), 1322);
    }

    #[test]
    fn positions_follow_mlx_sinusoidal_encoding() {
        let table = sinusoidal_positions(3, 8);
        let scale = (2.0f32 / 8.0).sqrt();
        // position 0: sin = 0, cos = 1 (times the scale)
        assert_eq!(&table.data[0..4], &[0.0; 4]);
        assert!(table.data[4..8].iter().all(|&c| (c - scale).abs() < 1e-7));
        // position 1, first frequency 1 and last 1e-4
        assert!((table.data[8] - 1f32.sin() * scale).abs() < 1e-7);
        assert!((table.data[11] - 1e-4f32.sin() * scale).abs() < 1e-7);
        assert!((table.data[12] - 1f32.cos() * scale).abs() < 1e-7);
    }
}
