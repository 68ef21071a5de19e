//! c10d's gloo process group on the CPU: two ranks, each a process of this
//! test binary, meet through a FileStore and sum their tensors with
//! `allreduce`; both get the total. Mirrors fw-mlx's ring test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fw_torch::distributed::{Backend, Group};
use tch::{Kind, Tensor};

/// Set in a rank's environment: run the rank's side (its rank, then the
/// store's path).
const RANK_ENV: &str = "FW_TORCH_DISTRIBUTED_TEST_RANK";
const STORE_ENV: &str = "FW_TORCH_DISTRIBUTED_TEST_STORE";

/// A rank: joins the gloo group, sums [rank + 1; 4] over it in place and
/// as a new tensor, in float32 and bfloat16, and prints what it got. Run
/// by the test below in a process of its own.
#[test]
#[ignore = "a rank of gloo_allreduce_adds_every_ranks_tensor"]
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
    let mine = Tensor::full(
        [4],
        group.rank() as f64 + 1.0,
        (Kind::Float, tch::Device::Cpu),
    );
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

fn start_rank(rank: usize, store: &std::path::Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "rank", "--ignored", "--nocapture"])
        .env(RANK_ENV, rank.to_string())
        .env(STORE_ENV, store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn gloo_allreduce_adds_every_ranks_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut ranks = [start_rank(0, &store), start_rank(1, &store)];
    // A rank that cannot reach the other waits: never longer than a minute.
    let deadline = Instant::now() + Duration::from_secs(60);
    while ranks.iter_mut().any(|r| r.try_wait().unwrap().is_none()) {
        if Instant::now() > deadline {
            ranks.iter_mut().for_each(|r| drop(r.kill()));
            panic!("the ranks did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for (rank, child) in ranks.into_iter().enumerate() {
        let output = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&output.stdout);
        let errors = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "rank {rank}: {said}{errors}");
        // 1 + 2 from the two ranks, in every element, on both, in float32
        // and bfloat16; all_sum left its input as it was.
        let sum = "[3.0, 3.0, 3.0, 3.0]";
        let own = format!("[{0}.0, {0}.0, {0}.0, {0}.0]", rank + 1);
        let expected = format!("rank {rank} of 2: {sum} {sum} {own}");
        assert!(said.contains(&expected), "rank {rank}: {said}{errors}");
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
