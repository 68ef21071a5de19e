//! Both twins' `bandwidth_fraction` divides by the one copy ceiling that
//! the suite hands the runner (`bench_core::ceiling`), and the rows say
//! which: the same `ceiling_gbps` for MLX and PyTorch, and each twin's
//! fraction its own weight bandwidth over it.

use std::path::PathBuf;
use std::process::Command;

use bench_core::record::read_rows;
use bench_core::{ceiling, Ceiling, DeviceKind, Framework, Row, Status};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tinyllama-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A Llama of a few hundred thousand parameters over the Llama tokenizer's
/// vocabulary, so that the runner's prompt fits it.
const TINY_CONFIG: &str = r#"{
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 172,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 32000,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "max_position_embeddings": 64
}"#;

fn setting<'a>(row: &'a Row, key: &str) -> &'a str {
    row.settings
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {row:#?}"))
}

#[test]
fn both_twins_divide_by_the_ceiling_the_suite_hands_them() {
    let dir = temp_dir("ceiling");
    let config = dir.join("config.json");
    std::fs::write(&config, TINY_CONFIG).unwrap();
    let given = Ceiling::of_samples(DeviceKind::Cpu, &[1.0], 50e9, "a given probe".into()).unwrap();
    let rows_path = dir.join("rows.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_bench-tinyllama"))
        .env(ceiling::VARIABLE, given.to_variable())
        .arg("--rows")
        .arg(&rows_path)
        .args(["--device", "cpu", "--threads", "1"])
        .args(["--warmup", "0", "--repetitions", "2"])
        .args(["--set", "weights=random", "--set"])
        .arg(format!("config={}", config.display()))
        .args(["--set", "prompt_tokens=8", "--set", "gen_tokens=4"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    let rows = read_rows(&rows_path).unwrap();
    assert!(
        rows.iter().all(|row| row.case != "ceiling-copy"),
        "the twins measure no ceiling of their own"
    );
    let generate: Vec<&Row> = rows
        .iter()
        .filter(|row| row.case == "generate" && row.status == Status::Ok)
        .collect();
    let frameworks: Vec<Framework> = generate.iter().map(|row| row.framework).collect();
    assert_eq!(frameworks.len(), 2, "{rows:#?}");
    assert_ne!(frameworks[0], frameworks[1]);
    for row in generate {
        assert_eq!(setting(row, "ceiling_gbps"), "50.00");
        assert_eq!(setting(row, "ceiling_probe"), "a given probe");
        assert_eq!(setting(row, "ceiling_measured"), given.measured);
        let tokens_per_s = row.throughput.expect("tokens/s");
        let weight_bytes: f64 = setting(row, "weight_bytes_per_token").parse().unwrap();
        let achieved = weight_bytes * tokens_per_s / 1e9;
        let weight_gbps: f64 = setting(row, "weight_gbps").parse().unwrap();
        assert!(
            (weight_gbps - achieved).abs() <= 0.005 + 1e-6 * achieved,
            "{row:#?}"
        );
        let fraction: f64 = setting(row, "bandwidth_fraction").parse().unwrap();
        assert!(
            (fraction - achieved / 50.0).abs() <= 5e-4 + 1e-6 * fraction,
            "{}: fraction {fraction}, its {achieved} GB/s over 50",
            row.framework
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
