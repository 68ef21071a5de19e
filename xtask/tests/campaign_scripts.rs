//! The GPU campaign's scripts, run here without a GPU: `gpu-campaign.sh
//! plan` (what `start` would run for a set of lane files, on a clock of
//! the steps' estimates) and `selftest.sh` with stand-ins for the bundle's
//! run.sh and xtask.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// `gpu-campaign.sh plan SET GPUS CORES BUDGET_S`: its output and status.
fn plan(set: &str, gpus: u32, budget: u32) -> (String, bool) {
    let output = Command::new("bash")
        .arg(scripts().join("gpu-campaign.sh"))
        .args(["plan", set, &gpus.to_string(), "16", &budget.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (text, output.status.success())
}

/// The step lines a plan started (not skipped): "kind bench ...".
fn started(plan: &str) -> Vec<String> {
    plan.lines()
        .filter_map(|line| line.strip_prefix("== +"))
        .filter(|line| !line.contains("skipped") && !line.contains(" done"))
        .map(|line| line.split_once(" s ").unwrap().1.to_owned())
        .collect()
}

#[test]
fn the_one_sitting_set_runs_one_lane_in_the_issues_order() {
    let (text, ok) = plan("one-sitting", 2, 100_000);
    assert!(ok, "{text}");
    // One lane, on the first GPU, with the whole host, though two GPUs.
    let lanes: Vec<&str> = text.lines().filter(|l| l.starts_with("lane ")).collect();
    assert_eq!(lanes.len(), 1, "{text}");
    assert!(
        lanes[0].starts_with("lane 0: GPU 0, 16 threads, CPUs all"),
        "{text}"
    );
    let steps = started(&text);
    let kinds: Vec<String> = steps
        .iter()
        .map(|s| {
            let words: Vec<&str> = s.split_whitespace().collect();
            match words[0] {
                "refs" => format!("refs {}", words[2]),
                "twins" if words[3] == "eager" => "eager".into(),
                "twins" if s.contains("--set") => "sweep".into(),
                "twins" => "pass".into(),
                other => other.into(),
            }
        })
        .collect();
    let mut order = kinds.clone();
    order.dedup();
    assert_eq!(
        order,
        [
            "selftest",
            "pass",
            "selftest",
            "pass",
            "refs bf16",
            "sweep",
            "pass",
            "refs f32",
            "pass",
            "sweep",
            "eager",
            "refs tf32",
            "pass",
            "eager"
        ],
        "{text}"
    );
    // Every pass: all five benchmarks; tinyllama, bert and lm-train swept.
    assert_eq!(kinds.iter().filter(|k| *k == "pass").count(), 5 * 3 + 1);
    for value in [
        "prompt_tokens=128,512,1024,1920",
        "batch_size=1,8,32,64",
        "layers=3,6,12",
    ] {
        assert!(steps.iter().any(|s| s.contains(value)), "{value}: {text}");
    }
    // The self-test's commands: every benchmark it compares, both
    // precisions, one folder (the verdict of the second covers both).
    let selftests: Vec<&str> = text.lines().filter(|l| l.contains("selftest.sh")).collect();
    assert_eq!(selftests.len(), 2, "{text}");
    assert!(
        selftests[0].contains(r"SELFTEST_BENCHES=lm-train\ tinyllama ")
            && selftests[1].contains(r"SELFTEST_BENCHES=bert\ whisper ")
            && selftests
                .iter()
                .all(|l| l.ends_with("STAGE/lane0/selftest f32 bf16 ")),
        "{text}"
    );
    // BERT's sweep comes before pass 2, right after the bf16 references.
    let bert_sweep = steps
        .iter()
        .position(|s| s.contains("batch_size=1,8,32,64"))
        .unwrap();
    assert!(
        steps[bert_sweep - 1].starts_with("refs lm-train bf16"),
        "{text}"
    );
}

#[test]
fn a_deadline_skips_what_cannot_finish_and_runs_what_can() {
    let (text, ok) = plan("one-sitting", 1, 399);
    assert!(ok, "{text}");
    let steps = started(&text);
    // 150 s of self-test, 70 of TinyLlama and 90 of lm-train leave 89 s:
    // enough for whisper's 45, then too few for bert's and whisper's self-test (130) and
    // its twins (60), enough for transfer's 40.
    assert!(steps[0].starts_with("selftest"), "{text}");
    assert!(steps[1].starts_with("twins tinyllama"), "{text}");
    assert!(steps[2].starts_with("twins lm-train"), "{text}");
    assert!(steps[3].starts_with("twins whisper"), "{text}");
    assert!(
        text.contains("skipped, too little time left: selftest bert,whisper f32,bf16")
            && text.contains("skipped, too little time left: twins bert f32,tf32,bf16 best"),
        "{text}"
    );
    assert!(steps[4].starts_with("twins transfer"), "{text}");
    assert!(text.contains("all steps' estimates: 4215 s"), "{text}");
}

/// Two lists: one lane per GPU on two GPUs, each with half of the host;
/// on one GPU both lists in turn in one lane, without `wait` lines.
#[test]
fn two_lists_make_two_lanes_on_two_gpus_and_one_on_one() {
    let (text, ok) = plan("finish-bcf3930", 2, 100_000);
    assert!(ok, "{text}");
    let lanes: Vec<&str> = text.lines().filter(|l| l.starts_with("lane ")).collect();
    assert_eq!(lanes.len(), 2, "{text}");
    assert!(lanes[0].starts_with("lane 0: GPU 0, 8 threads"), "{text}");
    assert!(lanes[1].starts_with("lane 1: GPU 1, 8 threads"), "{text}");
    assert!(text.contains("waiting for lane0"), "{text}");

    let (text, ok) = plan("finish-bcf3930", 1, 100_000);
    assert!(ok, "{text}");
    let lanes: Vec<&str> = text.lines().filter(|l| l.starts_with("lane ")).collect();
    assert_eq!(lanes.len(), 1, "{text}");
    assert!(!text.contains("waiting for"), "{text}");
    let steps = started(&text);
    // The lists' first steps in turn.
    assert!(steps[0].starts_with("twins whisper"), "{text}");
    assert!(steps[1].starts_with("twins tinyllama tf32"), "{text}");
}

#[test]
fn every_committed_set_plans_without_an_unknown_step() {
    let campaign = scripts().join("campaign");
    let mut sets = vec![".".to_owned()];
    for entry in fs::read_dir(&campaign).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            sets.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    assert!(sets.len() >= 4, "{sets:?}");
    for set in sets {
        for gpus in [1, 2] {
            let (text, ok) = plan(&set, gpus, 100_000);
            assert!(ok && !text.contains("unknown step kind"), "{set}: {text}");
        }
    }
}

#[test]
fn an_unknown_step_kind_fails_the_plan_naming_it() {
    let dir = temp_dir("campaign-typo");
    fs::write(
        dir.join("lane0.steps"),
        "twins tinyllama bf16 best - 60\ntwin bert bf16 best - 60\n",
    )
    .unwrap();
    let (text, ok) = plan(dir.to_str().unwrap(), 1, 1000);
    assert!(!ok, "{text}");
    assert!(text.contains("unknown step kind 'twin'"), "{text}");
    fs::remove_dir_all(&dir).unwrap();
}

/// selftest.sh with stand-ins: run.sh records its arguments, xtask its
/// own and exits 1 (a failed check), which is the script's status.
fn selftest(dir: &Path, benches: &str, precisions: &[&str]) -> (Output, String, String) {
    let run = dir.join("run.sh");
    fs::write(&run, "echo \"$@\" > \"$(dirname \"$0\")/run-args\"\n").unwrap();
    let xtask = dir.join("xtask");
    fs::write(
        &xtask,
        "#!/usr/bin/env bash\necho \"$@\" > \"$(dirname \"$0\")/xtask-args\"\necho verdict\nexit 1\n",
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&xtask)
        .status()
        .unwrap();
    let output = Command::new("bash")
        .arg(scripts().join("selftest.sh"))
        .arg(dir.join("out"))
        .args(precisions)
        .env("SELFTEST_RUN", &run)
        .env("SELFTEST_XTASK", &xtask)
        .env("SELFTEST_BENCHES", benches)
        .env_remove("SELFTEST_EXPECT")
        .output()
        .unwrap();
    let read = |name: &str| fs::read_to_string(dir.join(name)).unwrap();
    (output, read("run-args"), read("xtask-args"))
}

#[test]
fn the_self_test_runs_both_modes_and_checks_them() {
    let dir = temp_dir("selftest-script");
    let (output, run, xtask) = selftest(&dir, "bert lm-train tinyllama", &[]);
    let out = dir.join("out");
    assert_eq!(
        run.trim(),
        format!(
            "{}/rows --bench bert lm-train tinyllama --device gpu --preset paper --precision f32 bf16 \
             --execution eager best --warmup 2 --repetitions 4 --time-budget 1000 --run-tag selftest \
             --set bert.record_losses=true --set bert.time_to_accuracy=false \
             --set lm-train.record_losses=true --set lm-train.warmup_steps=0 \
             --set lm-train.batch_size=8",
            out.display()
        )
    );
    assert_eq!(
        xtask.trim(),
        format!(
            "selftest-check {0}/rows --expect-execution cuda-graph --json {0}/selftest.json",
            out.display()
        )
    );
    // The check's verdict is the script's, and its text is kept.
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        fs::read_to_string(out.join("selftest.txt")).unwrap(),
        "verdict\n"
    );

    // A benchmark left out takes its knobs with it (a scoped key must
    // name a benchmark that runs).
    let (output, run, _) = selftest(&dir, "tinyllama", &["bf16"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        run.contains("--bench tinyllama --device gpu --preset paper --precision bf16 ")
            && !run.contains("--set"),
        "{run}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// A lane for real, with stand-ins for the bundle's scripts that log
/// their arguments: every step runs its script, a step needing an archive
/// that never comes waits until the deadline and is then skipped, and the
/// lane marks itself done.
#[test]
fn a_lane_runs_its_steps_through_the_bundles_scripts() {
    let stage = temp_dir("campaign-lane");
    let bundle = stage.join("bundle");
    fs::create_dir_all(&bundle).unwrap();
    for script in ["run.sh", "references.sh", "selftest.sh"] {
        fs::write(
            bundle.join(script),
            format!("echo \"{script} $* MLX_PTX_CACHE_DIR=$MLX_PTX_CACHE_DIR\" >> \"$(dirname \"$0\")/calls\"\n"),
        )
        .unwrap();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Long enough for the steps, short enough for the wait on bert's
    // archives to end soon.
    fs::write(stage.join("deadline"), format!("{}\n", now + 12)).unwrap();
    let steps = stage.join("steps");
    fs::write(
        &steps,
        "# kind bench precisions mode backends seconds\n\
         selftest lm-train,tinyllama f32,bf16 - - 1\n\
         twins tinyllama bf16 best - 1 --set prompt_tokens=128\n\
         refs lm-train bf16 - torch-compile,mlx-compile-causal 1\n\
         twins bert bf16 best - 1\n",
    )
    .unwrap();
    let output = Command::new("bash")
        .arg(scripts().join("gpu-campaign.sh"))
        .args(["lane", stage.to_str().unwrap(), "0", "1"])
        .arg(&steps)
        .arg("4")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{log}");
    let calls = fs::read_to_string(bundle.join("calls")).unwrap();
    let lane = stage.join("lane0");
    let cache = format!("MLX_PTX_CACHE_DIR={}/results/mlx-ptx-cache", lane.display());
    let expected = [
        format!("selftest.sh {}/selftest f32 bf16 {cache}", lane.display()),
        format!(
            "run.sh {}/results --bench tinyllama --device gpu --precision bf16 --preset paper \
             --threads 4 --run-tag g0 --repetitions 5 --set prompt_tokens=128 {cache}",
            lane.display()
        ),
        format!(
            "references.sh {}/results lm-train --precision bf16 --preset paper --device gpu \
             torch-compile mlx-compile-causal {cache}",
            lane.display()
        ),
    ];
    assert_eq!(calls.lines().collect::<Vec<_>>(), expected, "{log}");
    assert!(
        log.contains("skipped, too little time left: twins bert bf16 best"),
        "{log}"
    );
    assert!(lane.join("done").exists(), "{log}");
    fs::remove_dir_all(&stage).unwrap();
}
