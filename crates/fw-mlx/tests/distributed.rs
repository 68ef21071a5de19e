//! MLX's ring backend over loopback: two ranks, each a process of this
//! test binary, sum their arrays with `all_sum` and both get the total;
//! `average_gradients` gives both the mean of their gradients.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fw_mlx::distributed::Group;
use mlx_rs::{Array, Dtype};

/// Set in a rank's environment: run the rank's side of this test.
const RANK_ENV: &str = "FW_MLX_DISTRIBUTED_TEST_RANK";

/// A rank, run by the tests below in a process of its own: joins the ring
/// and runs the side its test names.
#[test]
#[ignore = "a rank of the tests below"]
fn rank() {
    let Ok(side) = std::env::var(RANK_ENV) else {
        return;
    };
    let group = Group::init("ring").unwrap();
    match side.as_str() {
        "all_sum" => all_sum_side(&group),
        "average" => average_side(&group),
        other => panic!("no side {other}"),
    }
}

/// Sums [rank + 1; 4] over the group, prints what it got.
fn all_sum_side(group: &Group) {
    let mine = Array::from_slice(&[group.rank() as f32 + 1.0; 4], &[4]);
    let sum = group.all_sum(&mine).unwrap();
    sum.eval().unwrap();
    println!(
        "rank {} of {}: {:?}",
        group.rank(),
        group.size(),
        sum.as_slice::<f32>()
    );
}

/// Gradients of three shapes, k x (rank + 1) in every element of the k-th
/// (k = 1, 10, 100); averaged in groups of at least 40 bytes (several
/// groups), per array (0), in bfloat16 and in mixed dtypes; prints every
/// result's elements, which must all be k x 1.5, in the input's dtype.
fn average_side(group: &Group) {
    let scale = group.rank() as f32 + 1.0;
    let gradients = |dtype: Dtype| -> Vec<Array> {
        [(vec![3, 4], 1.0), (vec![5], 10.0), (vec![2, 2], 100.0)]
            .into_iter()
            .map(|(shape, k): (Vec<i32>, f32)| {
                let n = shape.iter().product::<i32>() as usize;
                Array::from_slice(&vec![k * scale; n], &shape)
                    .as_dtype(dtype)
                    .unwrap()
            })
            .collect()
    };
    let mut mixed = gradients(Dtype::Float32);
    mixed[1] = mixed[1].as_dtype(Dtype::Bfloat16).unwrap();
    let cases = [
        ("grouped", gradients(Dtype::Float32), 40),
        ("per-array", gradients(Dtype::Float32), 0),
        ("bf16", gradients(Dtype::Bfloat16), 40),
        ("mixed", mixed, 40),
    ];
    for (name, inputs, bytes) in cases {
        let averaged = group.average_gradients(&inputs, bytes).unwrap();
        for (input, output) in inputs.iter().zip(&averaged) {
            assert_eq!(output.shape(), input.shape(), "{name}");
            assert_eq!(output.dtype(), input.dtype(), "{name}");
        }
        let values: Vec<Vec<f32>> = averaged
            .iter()
            .map(|a| {
                let a = a.as_dtype(Dtype::Float32).unwrap();
                a.eval().unwrap();
                a.as_slice::<f32>().to_vec()
            })
            .collect();
        println!("rank {} {name}: {values:?}", group.rank());
    }
}

/// Two free loopback ports (a port freed here may be taken again before
/// the rank binds it; the test then fails naming the address).
fn free_ports() -> [u16; 2] {
    let listeners = [0, 1].map(|_| TcpListener::bind("127.0.0.1:0").unwrap());
    listeners.map(|l| l.local_addr().unwrap().port())
}

fn start_rank(rank: usize, hostfile: &std::path::Path, side: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "rank", "--ignored", "--nocapture"])
        .env(RANK_ENV, side)
        .env("MLX_RANK", rank.to_string())
        .env("MLX_HOSTFILE", hostfile)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs both ranks of `side` over a ring on loopback; what each printed.
fn run_ranks(side: &str) -> [String; 2] {
    let dir = std::env::temp_dir().join(format!("mlx-ring-{side}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let hostfile = dir.join("hosts.json");
    let [a, b] = free_ports();
    let hosts = format!("[[\"127.0.0.1:{a}\"], [\"127.0.0.1:{b}\"]]");
    std::fs::write(&hostfile, hosts).unwrap();
    let mut ranks = [
        start_rank(0, &hostfile, side),
        start_rank(1, &hostfile, side),
    ];
    // A rank that cannot reach the other waits: never longer than a minute.
    let deadline = Instant::now() + Duration::from_secs(60);
    while ranks.iter_mut().any(|r| r.try_wait().unwrap().is_none()) {
        if Instant::now() > deadline {
            ranks.iter_mut().for_each(|r| drop(r.kill()));
            panic!("the ranks did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_dir_all(&dir).unwrap();
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
fn ring_all_sum_adds_every_ranks_array() {
    for (rank, said) in run_ranks("all_sum").iter().enumerate() {
        // 1 + 2 from the two ranks, in every element, on both.
        let expected = format!("rank {rank} of 2: [3.0, 3.0, 3.0, 3.0]");
        assert!(said.contains(&expected), "rank {rank}: {said}");
    }
}

#[test]
fn average_gradients_gives_every_rank_the_mean() {
    let mean = |k: f32, n: usize| format!("{:?}", vec![k * 1.5; n]);
    let expected = format!("[{}, {}, {}]", mean(1.0, 12), mean(10.0, 5), mean(100.0, 4));
    for (rank, said) in run_ranks("average").iter().enumerate() {
        for name in ["grouped", "per-array", "bf16", "mixed"] {
            let line = format!("rank {rank} {name}: {expected}");
            assert!(said.contains(&line), "rank {rank} {name}: {said}");
        }
    }
}
