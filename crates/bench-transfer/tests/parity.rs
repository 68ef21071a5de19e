//! The twins compute the same function: the same inputs give the same
//! matrices, and both match a float64 reference computed here.

use bench_core::host::HostTensor;
use bench_core::Precision;
use bench_transfer::{mlx, torch, SwitchConfig, Switching};
use bench_twin::testing::cpu_runtimes;

/// r1 = norm(a @ b), r2 = norm(b @ c), r3 = norm(c @ a), in float64.
fn reference_iteration(m: &[Vec<f64>; 3], n: usize) -> [Vec<f64>; 3] {
    let product = |x: &[f64], y: &[f64]| {
        let mut out = vec![0.0; n * n];
        for i in 0..n {
            for k in 0..n {
                let xik = x[i * n + k];
                for j in 0..n {
                    out[i * n + j] += xik * y[k * n + j];
                }
            }
        }
        for j in 0..n {
            let max = (0..n).map(|i| out[i * n + j]).fold(f64::MIN, f64::max);
            for i in 0..n {
                out[i * n + j] /= max;
            }
        }
        out
    };
    [
        product(&m[0], &m[1]),
        product(&m[1], &m[2]),
        product(&m[2], &m[0]),
    ]
}

#[test]
fn twins_match_each_other_and_a_float64_reference() {
    let config = SwitchConfig {
        size: 48,
        iterations: 2,
    };
    let inputs = config.inputs(3);

    let (mlx_rt, torch_rt) = cpu_runtimes(Precision::F32, 1);
    let mut mlx_switch = mlx::Switch::new(&mlx_rt, &inputs).unwrap();
    let mut torch_switch = torch::Switch::new(&torch_rt, &inputs).unwrap();
    let mut reference = inputs
        .each_ref()
        .map(|t| t.data.iter().map(|&x| x as f64).collect::<Vec<_>>());
    for _ in 0..config.iterations {
        mlx_switch.iterate().unwrap();
        torch_switch.iterate().unwrap();
        // an iteration is the products twice: accelerator half, CPU half
        reference = reference_iteration(&reference_iteration(&reference, config.size), config.size);
    }
    let mlx_out = mlx_switch.matrices().unwrap();
    let torch_out = torch_switch.matrices().unwrap();
    for i in 0..3 {
        let expected = HostTensor::new(
            vec![48, 48],
            reference[i].iter().map(|&x| x as f32).collect(),
        )
        .unwrap();
        // float32 accumulation over 48-term sums, four chained products
        let tolerance = 1e-4;
        let mlx_vs_torch = mlx_out[i].max_abs_diff(&torch_out[i]).unwrap();
        assert!(
            mlx_out[i]
                .all_close(&torch_out[i], tolerance, 1e-6)
                .unwrap(),
            "matrix {i}: MLX vs PyTorch differ by {mlx_vs_torch}"
        );
        assert!(
            mlx_out[i].all_close(&expected, tolerance, 1e-6).unwrap(),
            "matrix {i}: MLX vs reference"
        );
        assert!(
            torch_out[i].all_close(&expected, tolerance, 1e-6).unwrap(),
            "matrix {i}: PyTorch vs reference"
        );
        // every column is normalised to a maximum of 1
        let col_max = (0..48)
            .map(|r| mlx_out[i].data[r * 48])
            .fold(f32::MIN, f32::max);
        assert!((col_max - 1.0).abs() < 1e-6);
    }
}

#[test]
fn paper_preset_is_the_original_size() {
    let paper = bench_transfer::workload::presets(bench_core::Preset::Paper).sizes;
    assert_eq!((paper.size, paper.iterations), (10_000, 50));
    assert_eq!(paper.flops(), 6.0 * 2.0 * 1e12 * 50.0);
}
