//! MLX's ring backend over loopback: two ranks, each a process of this
//! test binary, sum their arrays with `all_sum` and both get the total.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fw_mlx::distributed::Group;
use mlx_rs::Array;

/// Set in a rank's environment: run the rank's side.
const RANK_ENV: &str = "FW_MLX_DISTRIBUTED_TEST_RANK";

/// A rank: joins the ring, sums [rank + 1; 4] over the group, prints what
/// it got. Run by the test below in a process of its own.
#[test]
#[ignore = "a rank of ring_all_sum_adds_every_ranks_array"]
fn rank() {
    if std::env::var_os(RANK_ENV).is_none() {
        return;
    }
    let group = Group::init("ring").unwrap();
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

/// Two free loopback ports (a port freed here may be taken again before
/// the rank binds it; the test then fails naming the address).
fn free_ports() -> [u16; 2] {
    let listeners = [0, 1].map(|_| TcpListener::bind("127.0.0.1:0").unwrap());
    listeners.map(|l| l.local_addr().unwrap().port())
}

fn start_rank(rank: usize, hostfile: &std::path::Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "rank", "--ignored", "--nocapture"])
        .env(RANK_ENV, "1")
        .env("MLX_RANK", rank.to_string())
        .env("MLX_HOSTFILE", hostfile)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn ring_all_sum_adds_every_ranks_array() {
    let dir = std::env::temp_dir().join(format!("mlx-ring-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let hostfile = dir.join("hosts.json");
    let [a, b] = free_ports();
    let hosts = format!("[[\"127.0.0.1:{a}\"], [\"127.0.0.1:{b}\"]]");
    std::fs::write(&hostfile, hosts).unwrap();
    let mut ranks = [start_rank(0, &hostfile), start_rank(1, &hostfile)];
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
        // 1 + 2 from the two ranks, in every element, on both.
        let expected = format!("rank {rank} of 2: [3.0, 3.0, 3.0, 3.0]");
        assert!(said.contains(&expected), "rank {rank}: {said}{errors}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
