//! Starting a cell's ranks and watching them, framework-free.
//!
//! The runner process of a cell is the launcher: it starts `world` ranks,
//! each this same program in a process of its own (told its rank and the
//! cell by environment, see [`RANK_VAR`]), in the runner's own process
//! group, so that whatever ends the cell's group ends them too. On Linux
//! each rank also gets a parent-death signal: a launcher killed outright
//! takes its ranks with it. The launcher takes part in no collective, so a
//! rank that dies never leaves it waiting: it kills the others, reaps
//! every rank and fails the cell with that rank's reason. Rank 0 writes
//! the cell's results (the slowest rank's time per repetition, gathered by
//! the ranks themselves); the launcher turns them into rows.
//!
//! Rendezvous, in the cell's temporary folder: the spec every rank reads,
//! PyTorch's FileStore, MLX's ring hostfile (free loopback ports; none for
//! one rank, which is MLX's one-process group); MLX's
//! NCCL backend gets a free port in `NCCL_PORT`. Every rank's environment
//! sets [`NO_MULTICAST`]. On a GPU, rank r sees only GPU r
//! (`CUDA_VISIBLE_DEVICES`), as `mlx.launch` and torchrun users set it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bench_core::{DeviceKind, Unavailable};
use serde::{Deserialize, Serialize};

use crate::rank::RankSpec;
use crate::workload::NO_MULTICAST;

/// Set in a rank's environment: its rank. A process without it is a
/// runner (a launcher).
pub const RANK_VAR: &str = "BENCH_DISTRIBUTED_RANK";
/// Set in a rank's environment: the cell's spec file.
pub const SPEC_VAR: &str = "BENCH_DISTRIBUTED_SPEC";
/// For the tests: the rank named here dies (exit status 101) once it has
/// joined its group, while the others wait in their first collective.
pub const FAIL_RANK_VAR: &str = "BENCH_DISTRIBUTED_FAIL_RANK";

/// How long ranks that are still running may take to finish once one has
/// finished well: they have at most their last gather left.
const GRACE: Duration = Duration::from_secs(60);
/// Lines of each rank's output kept for a failure's reason.
const TAIL_LINES: usize = 12;

/// Whether this process is a rank (started by a launcher).
pub fn is_rank() -> bool {
    std::env::var_os(RANK_VAR).is_some()
}

/// What a rank that failed left for the launcher: its error, and whether
/// it means "cannot run here" (a skipped row) rather than a failure.
#[derive(Debug, Serialize, Deserialize)]
pub struct RankError {
    pub message: String,
    pub unavailable: bool,
}

/// Where rank `rank`'s error goes.
pub fn error_path(dir: &Path, rank: usize) -> PathBuf {
    dir.join(format!("error-{rank}.json"))
}

/// The folder of one cell's rendezvous and results, removed with it.
pub struct Rendezvous {
    dir: tempfile::TempDir,
}

impl Rendezvous {
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("bench-distributed-")
            .tempdir()
            .context("creating the cell's temporary folder")?;
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// PyTorch's FileStore: a file none of the ranks has used.
    pub fn store(&self) -> PathBuf {
        self.path().join("store")
    }

    pub fn report(&self) -> PathBuf {
        self.path().join("report.json")
    }
}

/// Runs `spec`'s ranks to the end; rank 0's report, or why the cell failed
/// (or cannot run here).
pub fn run<R: serde::de::DeserializeOwned>(spec: &RankSpec, rendezvous: &Rendezvous) -> Result<R> {
    let devices = rank_devices(spec.device, spec.sizes.world)?;
    let spec_path = rendezvous.path().join("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec_pretty(spec)?)
        .with_context(|| format!("writing {}", spec_path.display()))?;
    let backend_env = backend_environment(spec, rendezvous.path())?;
    let mut ranks = Ranks::default();
    for rank in 0..spec.sizes.world {
        let mut command = Command::new(std::env::current_exe().context("finding this program")?);
        if spec.sizes.world > 1 {
            command.env("MLX_RANK", rank.to_string());
        }
        command
            .env(RANK_VAR, rank.to_string())
            .env(SPEC_VAR, &spec_path)
            .envs(NO_MULTICAST)
            .envs(backend_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(devices) = &devices {
            command.env("CUDA_VISIBLE_DEVICES", &devices[rank]);
        }
        ranks.start(rank, command)?;
    }
    ranks.watch(rendezvous.path())?;
    let report = rendezvous.report();
    let text = std::fs::read(&report)
        .with_context(|| format!("rank 0 finished without writing {}", report.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("reading {}", report.display()))
}

/// Each rank's `CUDA_VISIBLE_DEVICES` on a GPU (None on the CPU): one GPU
/// each, from those this process may use. Too few GPUs, or a Mac (one GPU:
/// ranks across Macs are another set-up, see docs/DISTRIBUTED.md), make
/// the cell unavailable here.
fn rank_devices(device: DeviceKind, world: usize) -> Result<Option<Vec<String>>> {
    if device == DeviceKind::Cpu {
        return Ok(None);
    }
    if cfg!(target_os = "macos") {
        bail!(Unavailable(
            "a Mac has one GPU: ranks on several GPUs need several Macs (docs/DISTRIBUTED.md)"
                .into()
        ));
    }
    let visible = visible_gpus();
    if visible.len() < world {
        bail!(Unavailable(format!(
            "world={world} needs {world} GPUs, one per rank; this machine lets us use {}",
            visible.len()
        )));
    }
    Ok(Some(visible))
}

/// The NVIDIA GPUs this process may use: those the driver lists
/// (`/proc/driver/nvidia/gpus`), or the ones `CUDA_VISIBLE_DEVICES` names.
fn visible_gpus() -> Vec<String> {
    let installed = std::fs::read_dir("/proc/driver/nvidia/gpus")
        .map(|entries| entries.count())
        .unwrap_or(0);
    match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(list) => list
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .take(installed)
            .map(str::to_owned)
            .collect(),
        Err(_) => (0..installed).map(|i| i.to_string()).collect(),
    }
}

/// The variables each backend's ranks meet through: MLX's ring reads a
/// hostfile of one loopback address per rank, MLX's NCCL backend a host
/// and port (PyTorch's FileStore path is in the spec).
fn backend_environment(spec: &RankSpec, dir: &Path) -> Result<Vec<(String, String)>> {
    if spec.sizes.world == 1 {
        // MLX's one-process group needs none (and must not find one).
        return Ok(Vec::new());
    }
    match spec.backend.as_str() {
        "ring" => {
            let hosts: Vec<Vec<String>> = free_ports(spec.sizes.world)?
                .into_iter()
                .map(|port| vec![format!("127.0.0.1:{port}")])
                .collect();
            let hostfile = dir.join("hosts.json");
            std::fs::write(&hostfile, serde_json::to_vec(&hosts)?)
                .with_context(|| format!("writing {}", hostfile.display()))?;
            Ok(vec![(
                "MLX_HOSTFILE".into(),
                hostfile.to_string_lossy().into_owned(),
            )])
        }
        "nccl" if spec.framework == bench_core::Framework::Mlx => Ok(vec![
            ("NCCL_HOST_IP".into(), "127.0.0.1".into()),
            ("NCCL_PORT".into(), free_ports(1)?[0].to_string()),
            ("MLX_WORLD_SIZE".into(), spec.sizes.world.to_string()),
        ]),
        _ => Ok(Vec::new()),
    }
}

/// `count` loopback ports free now (another program may take one before
/// the rank binds it; the rank's error then names the address).
fn free_ports(count: usize) -> Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("finding free loopback ports")?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

/// One started rank: its process, and the last lines it printed.
struct Started {
    child: Child,
    tail: Arc<Mutex<VecDeque<String>>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

/// The cell's ranks. Dropping it (the cell ended, failed, or panicked)
/// kills whichever still run and reaps them all.
#[derive(Default)]
struct Ranks {
    started: Vec<Started>,
}

impl Ranks {
    fn start(&mut self, rank: usize, mut command: Command) -> Result<()> {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; nothing else runs between
            // fork and exec.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting rank {rank}"))?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(pass_on(rank, out, Arc::clone(&tail)));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(pass_on(rank, err, Arc::clone(&tail)));
        }
        self.started.push(Started {
            child,
            tail,
            readers,
            status: None,
        });
        Ok(())
    }

    /// Waits until every rank has finished well, or one has not: then the
    /// others are killed and the cell fails with the first one's reason.
    fn watch(&mut self, dir: &Path) -> Result<()> {
        let mut first_done: Option<Instant> = None;
        loop {
            for (rank, started) in self.started.iter_mut().enumerate() {
                if started.status.is_some() {
                    continue;
                }
                let Some(status) = started.child.try_wait()? else {
                    continue;
                };
                started.status = Some(status);
                if !status.success() {
                    return Err(self.failure(rank, status, dir));
                }
                first_done.get_or_insert_with(Instant::now);
            }
            if self.started.iter().all(|s| s.status.is_some()) {
                return Ok(());
            }
            if let Some(done) = first_done {
                if done.elapsed() > GRACE {
                    let late: Vec<String> = (0..self.started.len())
                        .filter(|&r| self.started[r].status.is_none())
                        .map(|r| r.to_string())
                        .collect();
                    bail!(
                        "rank(s) {} still ran {} s after another finished",
                        late.join(", "),
                        GRACE.as_secs()
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Why `rank` failed: what it wrote (its error file), else its exit and
    /// its last lines. A rank that could not run here makes the cell
    /// unavailable (a skipped row).
    fn failure(&mut self, rank: usize, status: ExitStatus, dir: &Path) -> anyhow::Error {
        self.stop();
        let written = std::fs::read(error_path(dir, rank))
            .ok()
            .and_then(|text| serde_json::from_slice::<RankError>(&text).ok());
        match written {
            Some(error) if error.unavailable => anyhow!(Unavailable(error.message)),
            Some(error) => anyhow!("rank {rank}: {}", error.message),
            None => {
                let tail = self.started[rank].tail.lock().expect("tail lock");
                let lines: Vec<&str> = tail.iter().map(String::as_str).collect();
                anyhow!(
                    "rank {rank} died ({status}); the other ranks were stopped. Its last output:\n{}",
                    lines.join("\n")
                )
            }
        }
    }

    /// Kills every rank still running, reaps all, and waits for their
    /// output to be passed on.
    fn stop(&mut self) {
        for started in &mut self.started {
            if started.status.is_none() {
                let _ = started.child.kill();
                started.status = started.child.wait().ok();
            }
        }
        for started in &mut self.started {
            for reader in started.readers.drain(..) {
                let _ = reader.join();
            }
        }
    }
}

impl Drop for Ranks {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Passes a rank's output on to ours (stderr: the runner's stdout carries
/// its messages), each line marked with the rank, keeping the last lines.
fn pass_on(
    rank: usize,
    output: impl Read + Send + 'static,
    tail: Arc<Mutex<VecDeque<String>>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            eprintln!("rank {rank}: {line}");
            let mut tail = tail.lock().expect("tail lock");
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    })
}
