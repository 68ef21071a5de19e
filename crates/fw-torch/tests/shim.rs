//! fw-torch's libtorch shim: fused AdamW against libtorch's own AdamW, and
//! CUDA graphs refused with a clear reason where there is no CUDA.

use fw_torch::{cuda_graphs_available, AdamW, AdamWHyper, AdamWKind, CudaGraph, GraphedStep};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

const HYPER: AdamWHyper = AdamWHyper {
    beta1: 0.9,
    beta2: 0.98,
    weight_decay: 0.01,
    eps: 1e-8,
};

/// Trains one small two-layer network for `steps` steps with AdamW of
/// `kind`, from the same seed and data, with a learning rate that changes
/// every step; returns each step's loss and the final weights.
fn train(kind: AdamWKind, steps: usize) -> (Vec<f64>, Vec<Tensor>) {
    tch::manual_seed(7);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = nn::seq()
        .add(nn::linear(vs.root() / "a", 16, 32, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(vs.root() / "b", 32, 4, Default::default()));
    let inputs = Tensor::randn([64, 16], (Kind::Float, Device::Cpu));
    let targets = Tensor::randn([64, 4], (Kind::Float, Device::Cpu));
    let mut optimizer = AdamW::new(&vs, kind, HYPER, 1e-2).unwrap();
    assert_eq!(optimizer.kind(), kind);
    let mut losses = Vec::new();
    for step in 1..=steps {
        optimizer.set_lr(1e-2 / step as f64);
        optimizer.zero_grad().unwrap();
        let loss = (net.forward(&inputs) - &targets).square().mean(Kind::Float);
        loss.backward();
        optimizer.step().unwrap();
        losses.push(loss.double_value(&[]));
    }
    let mut weights = vs.variables().into_iter().collect::<Vec<_>>();
    weights.sort_by(|a, b| a.0.cmp(&b.0));
    (losses, weights.into_iter().map(|(_, t)| t).collect())
}

#[test]
fn fused_adamw_takes_libtorchs_update() {
    let (fused_losses, fused) = train(AdamWKind::Fused, 20);
    let (plain_losses, plain) = train(AdamWKind::PerParameter, 20);
    assert!(
        fused_losses.last() < fused_losses.first(),
        "the loss falls: {fused_losses:?}"
    );
    for (a, b) in fused_losses.iter().zip(&plain_losses) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "loss {a} vs {b}");
    }
    for (a, b) in fused.iter().zip(&plain) {
        let diff = (a - b).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "weights differ by {diff}");
    }
    // The update moved the weights at all (a no-op optimizer would pass
    // the comparison above only if both were no-ops).
    let (_, start) = train(AdamWKind::Fused, 0);
    let moved = (&fused[0] - &start[0]).abs().max().double_value(&[]);
    assert!(
        moved > 1e-3,
        "fused AdamW left the weights at their start ({moved})"
    );
}

#[test]
fn fused_adamw_without_gradients_is_an_error_not_a_crash() {
    let vs = nn::VarStore::new(Device::Cpu);
    let _ = vs.root().zeros("w", &[3, 2]);
    let mut optimizer = AdamW::new(&vs, AdamWKind::Fused, HYPER, 1e-3).unwrap();
    let error = optimizer.step().unwrap_err().to_string();
    assert!(error.contains("no gradient"), "{error}");
    assert!(error.contains("[3, 2]"), "{error}");
}

#[test]
fn cuda_graphs_off_cuda_are_refused_clearly() {
    let error = cuda_graphs_available(Device::Cpu).unwrap_err().to_string();
    assert!(error.contains("CUDA graphs need a CUDA device"), "{error}");
    let error = CudaGraph::capture(Device::Cpu, || Ok(()))
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("CUDA graphs need a CUDA device"), "{error}");
    // A step that asks for graphs on the CPU fails at capture, after its
    // eager warm-up calls ran the work itself.
    let mut calls = 0;
    let mut step = GraphedStep::new(Device::Cpu, 1);
    step.run(|| {
        calls += 1;
        Ok(calls)
    })
    .unwrap();
    assert_eq!(calls, 1);
    assert!(step.run(|| Ok(0)).is_err());
    assert!(!step.is_captured());
}

#[test]
fn the_cuda_graph_shim_is_built_and_loadable_where_cuda_is() {
    // The CPU-only install builds the shim too (its CUDA symbols resolve
    // only once libtorch_cuda is loaded); on a CUDA machine it must open.
    if fw_torch::gpu_backend() == Some("cuda") {
        cuda_graphs_available(Device::Cuda(0)).unwrap();
    } else {
        let error = cuda_graphs_available(Device::Cuda(0))
            .unwrap_err()
            .to_string();
        assert!(error.contains("CUDA graphs are unavailable"), "{error}");
        assert!(
            !error.contains("built without"),
            "the shim should be built on this machine: {error}"
        );
    }
}
