//! c10d's gloo process group on the CPU: two ranks, each a process of this
//! test binary, meet through a FileStore and sum their tensors with
//! `allreduce`; both get the total (mirrors fw-mlx's ring test). And DDP's
//! Reducer: after backward, each rank holds the mean of both ranks'
//! gradients.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fw_torch::distributed::{Backend, Group, Reducer};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// Set in a rank's environment: run the rank's side (its rank, then the
/// store's path).
const RANK_ENV: &str = "FW_TORCH_DISTRIBUTED_TEST_RANK";
const STORE_ENV: &str = "FW_TORCH_DISTRIBUTED_TEST_STORE";
/// Set in a rank's environment: which test's side to run.
const SIDE_ENV: &str = "FW_TORCH_DISTRIBUTED_TEST_SIDE";

/// A rank, run by the tests below in a process of its own: joins the gloo
/// group and runs the side its test asks for.
#[test]
#[ignore = "a rank of the tests below"]
fn rank() {
    let Ok(rank) = std::env::var(RANK_ENV) else {
        return;
    };
    let store = std::env::var_os(STORE_ENV).unwrap();
    let rank: usize = rank.parse().unwrap();
    let group = Group::init(
        Backend::Gloo,
        store.as_ref(),
        rank,
        2,
        Duration::from_secs(60),
    )
    .unwrap();
    match std::env::var(SIDE_ENV).unwrap().as_str() {
        "allreduce" => allreduce_side(&group),
        "ddp" => ddp_side(&group),
        other => panic!("no side {other}"),
    }
}

/// Sums [rank + 1; 4] over the group in place and as a new tensor, in
/// float32 and bfloat16, and prints what it got.
fn allreduce_side(group: &Group) {
    let mine = Tensor::full([4], group.rank() as f64 + 1.0, (Kind::Float, Device::Cpu));
    let mut summed = mine.copy();
    group.allreduce(&mut summed).unwrap().wait().unwrap();
    let bf16 = group.all_sum(&mine.to_kind(Kind::BFloat16)).unwrap();
    println!(
        "rank {} of {}: {:?} {:?} {:?}",
        group.rank(),
        group.size(),
        Vec::<f32>::try_from(&summed).unwrap(),
        Vec::<f32>::try_from(&bf16.to_kind(Kind::Float)).unwrap(),
        Vec::<f32>::try_from(&mine).unwrap(),
    );
}

/// A small network, the same on every rank (one seed), and a rank's batch.
fn network(vs: &nn::Path) -> impl Module {
    nn::seq()
        .add(nn::linear(vs / "a", 16, 64, Default::default()))
        .add_fn(|x| x.tanh())
        .add(nn::linear(vs / "b", 64, 8, Default::default()))
}

fn batch(rank: usize, step: usize) -> (Tensor, Tensor) {
    tch::manual_seed(100 + 10 * step as i64 + rank as i64);
    let inputs = Tensor::randn([32, 16], (Kind::Float, Device::Cpu));
    let targets = Tensor::randn([32, 8], (Kind::Float, Device::Cpu));
    (inputs, targets)
}

fn loss(net: &impl Module, (inputs, targets): &(Tensor, Tensor)) -> Tensor {
    (net.forward(inputs) - targets).square().mean(Kind::Float)
}

/// Two steps of DDP over small buckets (several per step); after each
/// backward, prints the largest difference between this rank's gradients
/// and the mean of both ranks' (computed here without DDP).
fn ddp_side(group: &Group) {
    let rank = group.rank();
    tch::manual_seed(7);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = network(&vs.root());
    tch::manual_seed(7);
    let plain_vs = nn::VarStore::new(Device::Cpu);
    let plain = network(&plain_vs.root());
    let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let mut plain_params: Vec<(String, Tensor)> = plain_vs.variables().into_iter().collect();
    plain_params.sort_by(|a, b| a.0.cmp(&b.0));
    let tensors: Vec<Tensor> = params.iter().map(|(_, t)| t.shallow_clone()).collect();
    let mut reducer = Reducer::new(group, &tensors, 1024, 256).unwrap();
    for step in 0..2 {
        // The mean of both ranks' gradients, without DDP.
        let mut expected: Vec<Tensor> = plain_params.iter().map(|(_, t)| t.zeros_like()).collect();
        for other in 0..2 {
            for (_, t) in &plain_params {
                t.grad().defined().then(|| t.grad().zero_());
            }
            loss(&plain, &batch(other, step)).backward();
            for (sum, (_, t)) in expected.iter_mut().zip(&plain_params) {
                *sum += t.grad() / 2.0;
            }
        }
        for t in &tensors {
            t.grad().defined().then(|| t.grad().zero_());
        }
        reducer.prepare_for_forward().unwrap();
        let value = loss(&net, &batch(rank, step));
        reducer.prepare_for_backward().unwrap();
        value.backward();
        let diff = tensors
            .iter()
            .zip(&expected)
            .map(|(t, e)| (t.grad() - e).abs().max().double_value(&[]))
            .fold(0.0, f64::max);
        let own = (tensors[0].grad() - plain_params[0].1.grad())
            .abs()
            .max()
            .double_value(&[]);
        println!("rank {rank} step {step}: ddp gradient differs from the mean by {diff:e}, from the last plain rank's by {own:e}");
    }
}

fn start_rank(rank: usize, store: &std::path::Path, side: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "rank", "--ignored", "--nocapture"])
        .env(RANK_ENV, rank.to_string())
        .env(SIDE_ENV, side)
        .env(STORE_ENV, store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs both ranks of `side` and returns what each printed.
fn run_ranks(side: &str) -> [String; 2] {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut ranks = [start_rank(0, &store, side), start_rank(1, &store, side)];
    // A rank that cannot reach the other waits: never longer than a minute.
    let deadline = Instant::now() + Duration::from_secs(60);
    while ranks.iter_mut().any(|r| r.try_wait().unwrap().is_none()) {
        if Instant::now() > deadline {
            ranks.iter_mut().for_each(|r| drop(r.kill()));
            panic!("the ranks did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let [a, b] = ranks;
    [a, b].map(|child| {
        let output = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&output.stdout).into_owned();
        let errors = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{said}{errors}");
        said
    })
}

#[test]
fn gloo_allreduce_adds_every_ranks_tensor() {
    for (rank, said) in run_ranks("allreduce").iter().enumerate() {
        // 1 + 2 from the two ranks, in every element, on both, in float32
        // and bfloat16; all_sum left its input as it was.
        let sum = "[3.0, 3.0, 3.0, 3.0]";
        let own = format!("[{0}.0, {0}.0, {0}.0, {0}.0]", rank + 1);
        let expected = format!("rank {rank} of 2: {sum} {sum} {own}");
        assert!(said.contains(&expected), "rank {rank}: {said}");
    }
}

/// DDP's Reducer, over buckets small enough that a step has several:
/// after each of two steps' backward, both ranks hold the mean of both
/// ranks' gradients (float32 sums of two: within 1e-6), which differs
/// from a rank's own.
#[test]
fn ddp_reducer_averages_gradients_over_the_ranks() {
    for (rank, said) in run_ranks("ddp").iter().enumerate() {
        for step in 0..2 {
            let prefix = format!("rank {rank} step {step}: ddp gradient differs from the mean by ");
            let line = said
                .lines()
                .find_map(|line| line.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("rank {rank} step {step}: {said}"));
            let (mean, own) = line.split_once(", from the last plain rank's by ").unwrap();
            let (mean, own): (f64, f64) = (mean.parse().unwrap(), own.parse().unwrap());
            assert!(mean < 1e-6, "rank {rank} step {step}: {said}");
            assert!(own > 1e-4, "the ranks' gradients differ: {said}");
        }
    }
}

/// A rank outside the group, and a backend this build lacks, are errors
/// that say so (this CPU build has no NCCL, or no CUDA to open it with).
#[test]
fn bad_groups_are_errors_that_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let error = Group::init(Backend::Gloo, &store, 2, 2, Duration::from_secs(1))
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("rank 2 is not below the group's size 2"),
        "{error}"
    );
    let error = "mpi".parse::<Backend>().unwrap_err().to_string();
    assert!(error.contains("expected gloo or nccl"), "{error}");
    if !tch::Cuda::is_available() {
        let error = Group::init(Backend::Nccl, &store, 0, 1, Duration::from_secs(1))
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("NCCL process group is unavailable"),
            "{error}"
        );
    }
}
