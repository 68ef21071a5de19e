//! `cargo xtask bench` under faults, with a fake runner (a shell script
//! that writes rows like a real one): interrupts and resume, hung cells,
//! out-of-memory deaths, runners that write nothing, a second suite on the
//! same results, unwritable results.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bench_core::env::Environment;
use bench_core::protocol::{Message, PREFIX};
use bench_core::record::read_rows;
use bench_core::{CaseResult, Cell, MeasureSettings, Row, Settings, Status};

/// A temporary suite: `bin/bench-fake` and a `results/` folder. What the
/// fake does for a cell is the content of `mode-<framework>-<device>`
/// (default ok); every call appends "<framework> <device>" to `calls`. It
/// speaks the runners' protocol (`bench_core::protocol`) and appends its
/// rows to the run's JSONL record, as a real runner does.
struct Suite {
    dir: PathBuf,
}

impl Suite {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("xtask-faults-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("bin")).unwrap();
        let script = dir.join("bin/bench-fake");
        fs::write(&script, fake_runner(&dir)).unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }

    fn set_mode(&self, framework: &str, device: &str, mode: &str) {
        fs::write(self.dir.join(format!("mode-{framework}-{device}")), mode).unwrap();
    }

    fn command(&self, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
        command
            .arg("bench")
            .arg("--prebuilt")
            .arg(self.dir.join("bin"))
            .arg("--results")
            .arg(self.dir.join("results"))
            .args(extra);
        command
    }

    /// A new run of the four cells: cpu torch, cpu mlx, gpu torch, gpu mlx.
    fn four_cells(&self, extra: &[&str]) -> Command {
        let mut command = self.command(&["--framework", "torch", "mlx", "--device", "cpu", "gpu"]);
        command.args(extra);
        command
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The run's JSONL record (the only one) and its rows.
    fn rows(&self) -> (PathBuf, Vec<Row>) {
        let records: Vec<PathBuf> = fs::read_dir(self.dir.join("results"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        assert_eq!(records.len(), 1, "{records:?}");
        let rows = read_rows(&records[0]).unwrap();
        (records[0].clone(), rows)
    }

    /// Waits (at most a minute) for the fake to reach its hang.
    fn wait_for_hang(&self) -> (i32, i32) {
        let started = self.dir.join("started");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !started.exists() {
            assert!(Instant::now() < deadline, "the hanging cell never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = |name: &str| {
            fs::read_to_string(self.dir.join(name))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        (pid("started"), pid("sleeper"))
    }
}

impl Drop for Suite {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A message line as a runner prints it, with placeholders for the cell
/// that sed fills in.
fn template(message: Message) -> String {
    format!(
        "{PREFIX}{}",
        placeholders(serde_json::to_string(&message).unwrap())
    )
}

/// A row's JSON with placeholders for its cell.
fn placeholders(json: String) -> String {
    json.replace("\"run_id\":\"run\"", "\"run_id\":\"@RUN@\"")
        .replace("\"framework\":\"torch\"", "\"framework\":\"@FW@\"")
        .replace("\"device\":\"cpu\"", "\"device\":\"@DEV@\"")
        .replace("\"precision\":\"f32\"", "\"precision\":\"@PREC@\"")
        .replace("\"preset\":\"quick\"", "\"preset\":\"@PRESET@\"")
        .replace("\"threads\":\"1\"", "\"threads\":\"@THREADS@\"")
}

/// The knob the fake takes as a list (`--set n=8,16`): its value in the
/// rows' settings and in the plans of a sweep.
const SWEPT: (&str, &str) = ("n", "@N@");

/// The start record of a fake cell (a quick CPU float32 PyTorch cell that
/// the placeholders make the asked one, its knob `n` the one asked).
fn start() -> Row {
    let cell = Cell {
        options: vec![(SWEPT.0.to_owned(), SWEPT.1.to_owned())],
        ..Cell::for_checks()
    };
    Row::start("run", "fake", &cell, "1", &Environment::default())
}

fn fake_runner(dir: &Path) -> String {
    let plan = template(Message::Plan {
        start: start(),
        measure: MeasureSettings::new(1, 5, 3, 5),
        options: None,
    });
    // A plan per value of a list, as a real runner's: it names its value.
    let plan_of_value = template(Message::Plan {
        start: start(),
        measure: MeasureSettings::new(1, 5, 3, 5),
        options: Some(vec![(SWEPT.0.to_owned(), SWEPT.1.to_owned())]),
    });
    let begin = template(Message::Start { row: start() });
    let row = |status, reason| {
        placeholders(serde_json::to_string(&start().ended(status, reason)).unwrap())
    };
    // A measured row of one case, three repetitions.
    let case = CaseResult {
        case: "step".into(),
        samples: vec![0.010, 0.011, 0.012],
        throughput: None,
        peak_memory_bytes: None,
        settings: Settings::new(),
    };
    let ok = placeholders(serde_json::to_string(&start().measured(&case, None).unwrap()).unwrap());
    let skipped = row(Status::Skipped, "no accelerator");
    let failed = row(Status::Failed, "fake failure");
    let dir = dir.display();
    format!(
        r#"#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows=$2; shift ;;
    --run-id) run=$2; shift ;;
    --framework) fw=$2; shift ;;
    --device) dev=$2; shift ;;
    --precision) prec=$2; shift ;;
    --preset) preset=$2; shift ;;
    --set) sets="$sets $2"; shift ;;
    --threads) threads=$2; shift ;;
    --check) check=1 ;;
    --list-knobs) echo "  n  N of the matrices"; exit 0 ;;
  esac
  shift
done
fill() {{
  # `auto` is quick here, as a real runner's CPU cells.
  case "$preset" in auto|"") preset=quick ;; esac
  sed "s/@RUN@/$run/; s/@FW@/$fw/; s/@DEV@/${{dev:-cpu}}/; s/@PREC@/${{prec:-f32}}/; s/@PRESET@/$preset/; s/@N@/$n/g; s/@THREADS@/${{threads:-1}}/"
}}
n=$(printf '%s\n' $sets | sed -n 's/^n=//p')
if [ -n "$check" ]; then
  case "$sets" in
    *typo=*) echo "error: fake has no knob 'typo'; did you mean 'n'?" >&2; exit 2 ;;
  esac
  case "$n" in
    *,*)
      for n in $(echo "$n" | tr , ' '); do
        for fw in torch mlx; do printf '%s\n' '{plan_of_value}' | fill; done
      done ;;
    *) for fw in torch mlx; do printf '%s\n' '{plan}' | fill; done ;;
  esac
  exit 0
fi
echo "$fw $dev" >> "{dir}/calls"
echo "$fw $dev n=$n threads=$threads" >> "{dir}/cells"
start() {{
  printf '%s\n' '{begin}' | fill
}}
row() {{
  line=$(printf '%s\n' "$1" | fill)
  printf '%s\n' "$line" >> "$rows"
  printf '{PREFIX}{{"message":"row","row":%s}}\n' "$line"
}}
case $(cat "{dir}/mode-$fw-$dev" 2>/dev/null || echo ok) in
  ok) start; row '{ok}' ;;
  skip) start; row '{skipped}' ;;
  fail) start; row '{failed}'; exit 3 ;;
  silent) ;;
  hang) start; sleep 600 & echo $! > "{dir}/sleeper"; echo $$ > "{dir}/started"; wait ;;
  row-then-hang)
    start; row '{ok}'
    sleep 600 & echo $! > "{dir}/sleeper"; echo $$ > "{dir}/started"; wait ;;
  oom)
    start
    echo "terminate called after throwing an instance of 'std::runtime_error'" >&2
    echo "  what():  cudaMallocAsync failed: out of memory" >&2
    kill -ABRT $$ ;;
esac
"#
    )
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A process is gone once it no longer exists or is a zombie awaiting its
/// reaper. Waits up to 10 s for the kill to land.
fn assert_gone(pid: i32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // `ps` says the state on Linux and macOS alike; none: no process.
        let state = Command::new("ps")
            .args(["-o", "stat=", "-p", &pid.to_string()])
            .output()
            .expect("ps runs");
        let state = String::from_utf8_lossy(&state.stdout);
        let alive = !state.trim().is_empty() && !state.trim_start().starts_with('Z');
        if !alive {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} (pid {pid}) is still running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cell_of<'a>(rows: &'a [Row], framework: &str, device: &str) -> Vec<&'a Row> {
    rows.iter()
        .filter(|r| r.framework.to_string() == framework && r.device.to_string() == device)
        .collect()
}

#[test]
fn summary_counts_cells_and_only_a_failure_fails_the_suite() {
    let suite = Suite::new("summary");
    suite.set_mode("mlx", "cpu", "fail");
    suite.set_mode("torch", "gpu", "skip");
    // A runner that ends well but writes nothing has not measured anything.
    suite.set_mode("mlx", "gpu", "silent");
    let output = suite.four_cells(&[]).output().unwrap();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("cells: 1 ok, 1 skipped, 2 failed, 0 interrupted"),
        "{text}"
    );
    let (_, rows) = suite.rows();
    let silent = cell_of(&rows, "mlx", "gpu");
    assert_eq!(silent.len(), 1);
    assert_eq!(silent[0].status, Status::Failed);
    assert!(
        silent[0]
            .reason
            .contains("ended (exit status: 0) but wrote no row"),
        "{}",
        silent[0].reason
    );
    // It gave no start record: its row is its --check plan's, for its cell.
    assert_eq!(silent[0].benchmark, "fake");

    let skips_only = Suite::new("skips");
    skips_only.set_mode("torch", "gpu", "skip");
    skips_only.set_mode("mlx", "gpu", "skip");
    let output = skips_only.four_cells(&[]).output().unwrap();
    let text = stderr(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("cells: 2 ok, 2 skipped, 0 failed, 0 interrupted"),
        "{text}"
    );
}

#[test]
fn a_hung_cell_times_out_with_its_children_and_the_suite_goes_on() {
    let suite = Suite::new("hung");
    suite.set_mode("torch", "cpu", "hang");
    let output = suite
        .command(&[
            "--framework",
            "torch",
            "mlx",
            "--device",
            "cpu",
            "--cell-timeout",
            "1",
        ])
        .output()
        .unwrap();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let (runner, sleeper) = suite.wait_for_hang();
    assert_gone(runner, "the hung runner");
    assert_gone(sleeper, "the hung runner's child");
    let (_, rows) = suite.rows();
    let hung = cell_of(&rows, "torch", "cpu");
    assert_eq!(
        (hung[0].status, hung[0].reason.as_str()),
        (Status::Failed, "timed out after 1 s")
    );
    assert_eq!(hung[0].setting("cell_timeout_s"), Some("1"));
    assert_eq!(
        hung[0].setting("threads"),
        Some("1"),
        "the runner's own settings"
    );
    assert_eq!(cell_of(&rows, "mlx", "cpu")[0].status, Status::Ok);
}

#[test]
fn a_runner_dead_of_out_of_memory_is_a_failed_row_naming_it_and_the_sizes() {
    let suite = Suite::new("oom");
    suite.set_mode("torch", "gpu", "oom");
    let output = suite
        .four_cells(&["--preset", "paper", "--set", "batch_size=1024"])
        .output()
        .unwrap();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let (_, rows) = suite.rows();
    let oom = cell_of(&rows, "torch", "gpu");
    assert_eq!(oom[0].status, Status::Failed);
    assert!(
        oom[0]
            .reason
            .starts_with("out of memory (preset=paper; batch_size=1024): ")
            && oom[0]
                .reason
                .contains("cudaMallocAsync failed: out of memory")
            && !oom[0].reason.contains("terminate called"),
        "{}",
        oom[0].reason
    );
    // The next cell still ran.
    assert_eq!(suite.calls().last().map(String::as_str), Some("mlx gpu"));
    assert_eq!(cell_of(&rows, "mlx", "gpu")[0].status, Status::Ok);
}

/// Starts the four-cell suite with a hang in its third cell (gpu torch),
/// after one of its rows, and sends `signal` once the hang is reached.
fn interrupt_in_third_cell(suite: &Suite, signal: i32) -> (Output, i32, i32) {
    suite.set_mode("torch", "gpu", "row-then-hang");
    let child: Child = suite
        .four_cells(&[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (runner, sleeper) = suite.wait_for_hang();
    // SAFETY: a signal to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    (child.wait_with_output().unwrap(), runner, sleeper)
}

#[test]
fn an_interrupt_stops_the_runner_keeps_rows_and_resume_runs_the_rest() {
    for (signal, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let suite = Suite::new(&format!("interrupt-{name}"));
        let (output, runner, sleeper) = interrupt_in_third_cell(&suite, signal);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(128 + signal), "{text}");
        assert_gone(runner, "the interrupted runner");
        assert_gone(sleeper, "the interrupted runner's child");
        assert!(
            text.contains("cells: 2 ok, 0 skipped, 0 failed, 1 interrupted, 1 not run"),
            "{text}"
        );
        let (record, rows) = suite.rows();
        let run_id = record.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            text.contains(&format!("cargo xtask bench --resume {run_id}")),
            "{text}"
        );
        let statuses: Vec<_> = rows
            .iter()
            .map(|r| (r.framework.to_string(), r.device.to_string(), r.status))
            .collect();
        assert_eq!(
            statuses,
            [
                ("torch".into(), "cpu".into(), Status::Ok),
                ("mlx".into(), "cpu".into(), Status::Ok),
                ("torch".into(), "gpu".into(), Status::Ok),
                ("torch".into(), "gpu".into(), Status::Interrupted),
            ]
        );
        assert!(
            rows[3]
                .reason
                .starts_with(&format!("interrupted by {name}")),
            "{}",
            rows[3].reason
        );

        // Resume runs the interrupted cell (its row from before the
        // interrupt does not make it whole) and the one never started, only.
        suite.set_mode("torch", "gpu", "ok");
        fs::remove_file(suite.dir.join("calls")).unwrap();
        let output = suite.command(&["--resume", &run_id]).output().unwrap();
        let text = stderr(&output);
        assert!(output.status.success(), "{text}");
        assert!(text.contains("2 of 4 cells left"), "{text}");
        assert_eq!(suite.calls(), ["torch gpu", "mlx gpu"]);
        let (_, rows) = suite.rows();
        assert_eq!(rows.len(), 6);
        assert!(rows[4..]
            .iter()
            .all(|r| r.status == Status::Ok && r.run_id == run_id));

        // A finished run has nothing left.
        let output = suite.command(&["--resume", &run_id]).output().unwrap();
        assert!(
            stderr(&output).contains("0 of 4 cells left"),
            "{}",
            stderr(&output)
        );
        assert_eq!(suite.calls().len(), 2);
    }
}

#[test]
fn resume_of_an_unknown_run_or_with_new_settings_is_refused() {
    let suite = Suite::new("resume-unknown");
    let output = suite
        .command(&["--resume", "20990101T000000Z"])
        .output()
        .unwrap();
    let text = stderr(&output);
    assert!(!output.status.success());
    assert!(text.contains("no run 20990101T000000Z to resume"), "{text}");
    let output = suite.command(&["--resume", "../x"]).output().unwrap();
    assert!(
        stderr(&output).contains("is not a run id"),
        "{}",
        stderr(&output)
    );
    let output = suite
        .command(&["--resume", "20990101T000000Z", "--preset", "paper"])
        .output()
        .unwrap();
    assert!(
        stderr(&output).contains("cannot be used with"),
        "{}",
        stderr(&output)
    );
    assert!(suite.calls().is_empty());
}

#[test]
fn a_second_suite_on_the_same_results_is_refused_and_changes_nothing() {
    let suite = Suite::new("concurrent");
    suite.set_mode("torch", "cpu", "hang");
    let mut first = suite
        .command(&["--framework", "torch", "--device", "cpu"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    suite.wait_for_hang();
    let output = suite.four_cells(&[]).output().unwrap();
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("another `cargo xtask bench` is writing to")
            && text.contains(&format!("pid {}", first.id())),
        "{text}"
    );
    assert_eq!(suite.calls(), ["torch cpu"]);
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    first.wait().unwrap();
    let (_, rows) = suite.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, Status::Interrupted);
}

#[test]
fn unwritable_results_fail_before_any_cell_naming_the_path() {
    let suite = Suite::new("unwritable");
    let file = suite.dir.join("a-file");
    fs::write(&file, b"").unwrap();
    for results in [Path::new("/dev/full"), &file] {
        let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("bench")
            .arg("--prebuilt")
            .arg(suite.dir.join("bin"))
            .arg("--results")
            .arg(results)
            .output()
            .unwrap();
        let text = stderr(&output);
        assert!(!output.status.success(), "{text}");
        assert!(
            text.contains(&format!("cannot write results to {}", results.display())),
            "{text}"
        );
        assert!(suite.calls().is_empty(), "a cell ran: {text}");
    }
}

#[test]
fn a_mistyped_knob_stops_the_suite_before_any_cell_with_the_runners_words() {
    let suite = Suite::new("knobs");
    let output = suite.four_cells(&["--set", "typo=3"]).output().unwrap();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("fake has no knob 'typo'; did you mean 'n'?"),
        "{text}"
    );
    assert!(suite.calls().is_empty(), "{:?}", suite.calls());
    // A knob scoped to a benchmark the suite does not have is refused too.
    let output = suite.four_cells(&["--set", "fak.n=3"]).output().unwrap();
    let text = stderr(&output);
    assert!(
        text.contains("no benchmark is called 'fak'; did you mean 'fake'?"),
        "{text}"
    );
    assert!(suite.calls().is_empty(), "{:?}", suite.calls());
}

/// A list of values and a list of thread counts: one cell per
/// combination, both twins of a cell back to back, each runner told its
/// own value; a summary line per configuration; a resume finds every cell
/// done by its knob values.
#[test]
fn a_sweep_runs_each_combination_as_a_cell_and_ends_with_a_summary() {
    let suite = Suite::new("sweep");
    let sweep = ["--device", "cpu", "--set", "n=8,16", "--threads", "1,2"];
    let output = suite.command(&sweep).output().unwrap();
    let text = stderr(&output);
    assert!(output.status.success(), "{text}");
    let cells = fs::read_to_string(suite.dir.join("cells")).unwrap();
    assert_eq!(
        cells.lines().collect::<Vec<_>>(),
        [
            "torch cpu n=8 threads=1",
            "mlx cpu n=8 threads=1",
            "torch cpu n=16 threads=1",
            "mlx cpu n=16 threads=1",
            "torch cpu n=8 threads=2",
            "mlx cpu n=8 threads=2",
            "torch cpu n=16 threads=2",
            "mlx cpu n=16 threads=2",
        ]
    );
    assert!(text.contains("cells: 8 ok, 0 skipped, 0 failed"), "{text}");
    for configuration in [
        "n=8 threads=1",
        "n=16 threads=1",
        "n=8 threads=2",
        "n=16 threads=2",
    ] {
        let line = format!("  fake cpu f32 best, {configuration} (step)\n    PyTorch 11.00 ms, MLX 11.00 ms: no clear winner (by the medians, MLX 1.00 times faster [");
        assert!(text.contains(&line), "{line:?} not in:\n{text}");
    }
    let (record, rows) = suite.rows();
    assert_eq!(rows.len(), 8);
    assert_eq!(rows[2].setting("n"), Some("16"));
    let run_id = record.file_stem().unwrap().to_string_lossy().into_owned();
    let output = suite.command(&["--resume", &run_id]).output().unwrap();
    assert!(
        stderr(&output).contains("0 of 8 cells left"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn list_knobs_prints_each_benchmarks_knobs() {
    let suite = Suite::new("list");
    let output = suite.command(&["--list-knobs"]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        text.contains("fake (--set fake.key=value):\n  n  N of the matrices"),
        "{text}"
    );
}
