//! The end of `cargo xtask bench`, as hyperfine ends with "x.xx times
//! faster": for each configuration the run measured (benchmark, device,
//! precision, mode and, in a sweep, its knob values and thread count), the
//! two medians of its headline case, the MLX speed-up with its 95% interval
//! and the noise flag.
//!
//! The pairing of the twins' rows, the interval and the noise flag are the
//! report's (`xtask_analysis::pairs`), so that the summary and
//! reports/RESULTS.md cannot disagree; this module only picks each
//! configuration's rows and words the result.

use std::fmt::Write as _;

use bench_core::{DeviceKind, Execution, Framework, Precision, Row, Status};
use xtask_analysis::{pairs, Interval, Pair, Titles, NO_CLEAR_WINNER};

/// One configuration of the run: both twins of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Configuration {
    pub benchmark: String,
    pub device: DeviceKind,
    pub precision: Precision,
    pub execution: Execution,
    /// Its `--set` pairs, one value each.
    pub options: Vec<(String, String)>,
    /// Its `--threads`, where given.
    pub threads: Option<usize>,
}

impl Configuration {
    /// Whether `row` is a twin's row of this configuration (either twin).
    pub fn holds(&self, row: &Row) -> bool {
        row.is_twin()
            && row.benchmark == self.benchmark
            && row.device == self.device
            && row.precision == self.precision
            && row.execution == self.execution
            && configured_as(row, &self.options, self.threads)
    }

    /// "bert cpu f32 best, batch_size=4 seq_len=64".
    fn label(&self) -> String {
        let mut label = format!(
            "{} {} {} {}",
            self.benchmark, self.device, self.precision, self.execution
        );
        let knobs = knob_text(&self.options, self.threads);
        if !knobs.is_empty() {
            let _ = write!(label, ", {knobs}");
        }
        label
    }
}

/// "batch_size=4 seq_len=64 threads=2": a configuration's knobs and thread
/// count as given (empty where it has neither).
pub fn knob_text(options: &[(String, String)], threads: Option<usize>) -> String {
    let threads = threads.map(|n| ("threads".to_owned(), n.to_string()));
    options
        .iter()
        .chain(threads.as_ref())
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether the row's settings hold these knob values (as given: the cell
/// records them before anything the benchmark adds) and thread count.
pub fn configured_as(row: &Row, options: &[(String, String)], threads: Option<usize>) -> bool {
    let has = |key: &str, value: &str| row.settings.iter().any(|(k, v)| k == key && v == value);
    options.iter().all(|(key, value)| has(key, value))
        && threads.is_none_or(|n| has("threads", &n.to_string()))
}

/// The summary of `configurations` (in their order, each once) from the
/// run's rows; `titles` names each benchmark's headline case.
pub fn text(rows: &[Row], configurations: &[Configuration], titles: &Titles) -> String {
    let mut seen: Vec<&Configuration> = Vec::new();
    for configuration in configurations {
        if !seen.contains(&configuration) {
            seen.push(configuration);
        }
    }
    if seen.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "summary (headline case; MLX speed-up = PyTorch median / MLX median, with its 95% interval):\n",
    );
    for configuration in seen {
        let mine: Vec<&Row> = rows.iter().filter(|r| configuration.holds(r)).collect();
        let case = titles
            .get(&configuration.benchmark)
            .map_or("", |(_, headline)| headline.as_str());
        let _ = writeln!(out, "  {} ({case})", configuration.label());
        let pair = pairs(&mine, titles).into_iter().next();
        let _ = writeln!(out, "    {}", verdict(pair.as_ref(), &mine, case));
    }
    out
}

/// "PyTorch 12.3 ms, MLX 6.10 ms: MLX 2.02 times faster [1.95-2.10]", or
/// what kept a twin from a time.
fn verdict(pair: Option<&Pair>, rows: &[&Row], case: &str) -> String {
    let twin = |framework: Framework| {
        let measured = pair.and_then(|p| match framework {
            Framework::Torch => p.torch.as_deref(),
            Framework::Mlx => p.mlx.as_deref(),
        });
        let name = framework_name(framework);
        match measured.and_then(Row::median_s) {
            Some(median) => format!("{name} {}", seconds(median)),
            None => format!("{name} {}", unmeasured(rows, framework, case)),
        }
    };
    let times = format!("{}, {}", twin(Framework::Torch), twin(Framework::Mlx));
    let Some(pair) = pair else {
        return times;
    };
    let Some(speedup) = pair.speedup() else {
        return times;
    };
    let interval = pair.interval();
    let mut line = format!("{times}: {}", faster(speedup, interval, pair.undecided()));
    let noise = pair.noise();
    if !noise.is_empty() {
        let _ = write!(line, "; {noise}");
    }
    line
}

/// "MLX 2.02 times faster [1.95-2.10]", "PyTorch 1.50 times faster
/// [1.40-1.61]" (the speed-up below 1, turned round), marked as the tables
/// mark it: "repetitions only" for an interval of one pass, and "no clear
/// winner" first where the run does not tell (`undecided`: the interval
/// holds 1, or the passes lie on both sides of it).
fn faster(speedup: f64, interval: Option<Interval>, undecided: bool) -> String {
    let (winner, factor, bounds) = if speedup >= 1.0 {
        ("MLX", speedup, interval.map(|i| (i.low, i.high)))
    } else {
        (
            "PyTorch",
            1.0 / speedup,
            interval.map(|i| (1.0 / i.high, 1.0 / i.low)),
        )
    };
    let mut text = format!("{winner} {factor:.2} times faster");
    match (bounds, interval) {
        (Some((low, high)), Some(i)) if i.repetitions_only() => {
            let _ = write!(text, " [{low:.2}-{high:.2}, repetitions only]");
        }
        (Some((low, high)), _) => {
            let _ = write!(text, " [{low:.2}-{high:.2}]");
        }
        _ => text.push_str(" (too few repetitions for an interval)"),
    }
    if undecided {
        text = format!("{NO_CLEAR_WINNER} (by the medians, {text})");
    }
    text
}

/// Why a twin has no time: its row's status and reason, or "not run".
fn unmeasured(rows: &[&Row], framework: Framework, case: &str) -> String {
    let last = rows
        .iter()
        .rev()
        .find(|r| r.framework == framework && r.status != Status::Ok)
        .or_else(|| rows.iter().rev().find(|r| r.framework == framework));
    match last {
        None => "not run".to_owned(),
        Some(row) if row.status == Status::Ok => format!("measured no {case} case"),
        Some(row) => {
            let status = format!("{:?}", row.status).to_lowercase();
            let reason: String = row.reason.chars().take(100).collect();
            let more = if row.reason.chars().count() > 100 {
                "..."
            } else {
                ""
            };
            if reason.is_empty() {
                status
            } else if reason.starts_with(&status) {
                // "interrupted by SIGINT (Ctrl-C) after 3 s" says it already.
                format!("{reason}{more}")
            } else {
                format!("{status} ({reason}{more})")
            }
        }
    }
}

fn framework_name(framework: Framework) -> &'static str {
    match framework {
        Framework::Torch => "PyTorch",
        Framework::Mlx => "MLX",
    }
}

/// A median as hyperfine prints one: "1.234 s", "12.3 ms", "45.6 µs".
fn seconds(value: f64) -> String {
    let (scaled, unit) = if value >= 1.0 {
        (value, "s")
    } else if value >= 1e-3 {
        (value * 1e3, "ms")
    } else {
        (value * 1e6, "µs")
    };
    let decimals = if scaled >= 100.0 {
        1
    } else if scaled >= 10.0 {
        2
    } else {
        3
    };
    format!("{scaled:.decimals$} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bench_core::env::Environment;
    use bench_core::measure::CaseResult;
    use bench_core::{Cell, Throughput};

    fn configuration(options: &[(&str, &str)]) -> Configuration {
        Configuration {
            benchmark: "bert".into(),
            device: DeviceKind::Cpu,
            precision: Precision::F32,
            execution: Execution::Best,
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            threads: None,
        }
    }

    fn titles() -> Titles {
        [("bert".to_owned(), ("BERT".to_owned(), "step".to_owned()))].into()
    }

    /// A measured twin row of bert's `step` at these knob values: three
    /// repetitions about `median`, spread by `spread` of it on each side.
    fn row(framework: Framework, options: &[(&str, &str)], median: f64, spread: f64) -> Row {
        let cell = Cell {
            framework,
            options: configuration(options).options,
            ..Cell::for_checks()
        };
        let start = Row::start("r1", "bert", &cell, "1", &Environment::default());
        let samples = vec![median * (1.0 - spread), median, median * (1.0 + spread)];
        let case = CaseResult {
            case: "step".into(),
            samples,
            throughput: Some(Throughput {
                work_per_repetition: 1.0,
                unit: "samples/s".into(),
            }),
            peak_memory_bytes: None,
            settings: bench_core::Settings::new(),
        };
        start.measured(&case, None).unwrap()
    }

    #[test]
    fn each_configuration_gets_its_medians_speedup_interval_and_noise() {
        let small = [("batch_size", "1")];
        let large = [("batch_size", "4")];
        let rows = [
            row(Framework::Torch, &small, 0.02, 0.01),
            row(Framework::Mlx, &small, 0.01, 0.01),
            row(Framework::Torch, &large, 0.04, 0.01),
            row(Framework::Mlx, &large, 0.08, 0.3),
        ];
        let configurations = [
            configuration(&small),
            configuration(&small),
            configuration(&large),
        ];
        let text = text(&rows, &configurations, &titles());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(lines[1], "  bert cpu f32 best, batch_size=1 (step)");
        assert!(
            lines[2].starts_with("    PyTorch 20.00 ms, MLX 10.00 ms: MLX 2.00 times faster ["),
            "{text}"
        );
        assert!(!lines[2].contains("noisy"), "{text}");
        assert_eq!(lines[3], "  bert cpu f32 best, batch_size=4 (step)");
        assert!(
            lines[4].starts_with("    PyTorch 40.00 ms, MLX 80.00 ms: PyTorch 2.00 times faster ["),
            "{text}"
        );
        assert!(lines[4].ends_with("; noisy (MLX IQR 30%)"), "{text}");
    }

    #[test]
    fn a_twin_without_a_time_says_why() {
        let only = [("batch_size", "1")];
        let failed = row(Framework::Mlx, &only, 0.01, 0.01).ended(Status::Failed, "out of memory");
        let rows = [row(Framework::Torch, &only, 2.0, 0.01), failed];
        let text = text(&rows, &[configuration(&only)], &titles());
        assert!(
            text.contains("    PyTorch 2.000 s, MLX failed (out of memory)\n"),
            "{text}"
        );
        let stopped = row(Framework::Mlx, &only, 0.01, 0.01)
            .ended(Status::Interrupted, "interrupted by SIGTERM after 5 s");
        let rows = [row(Framework::Torch, &only, 2.0, 0.01), stopped];
        let text = super::text(&rows, &[configuration(&only)], &titles());
        assert!(
            text.contains("MLX interrupted by SIGTERM after 5 s\n"),
            "{text}"
        );
        // A configuration with no row at all (an interrupted run).
        let text = super::text(&[], &[configuration(&[])], &titles());
        assert!(
            text.contains("  bert cpu f32 best (step)\n    PyTorch not run, MLX not run\n"),
            "{text}"
        );
    }

    #[test]
    fn the_speedup_is_worded_with_its_interval() {
        let interval = |low, high, passes| Some(Interval { low, high, passes });
        assert_eq!(
            faster(2.0, interval(1.9, 2.1, 3), false),
            "MLX 2.00 times faster [1.90-2.10]"
        );
        assert_eq!(
            faster(0.5, interval(0.4, 0.625, 3), false),
            "PyTorch 2.00 times faster [1.60-2.50]"
        );
        assert_eq!(
            faster(2.0, interval(1.9, 2.1, 1), false),
            "MLX 2.00 times faster [1.90-2.10, repetitions only]"
        );
        assert_eq!(
            faster(1.02, interval(0.95, 1.1, 3), true),
            "no clear winner (by the medians, MLX 1.02 times faster [0.95-1.10])"
        );
        assert_eq!(
            faster(1.5, None, false),
            "MLX 1.50 times faster (too few repetitions for an interval)"
        );
        assert_eq!(seconds(1.23456), "1.235 s");
        assert_eq!(seconds(0.0123), "12.30 ms");
        assert_eq!(seconds(0.000456), "456.0 µs");
    }

    #[test]
    fn rows_belong_to_the_configuration_whose_knobs_and_threads_they_hold() {
        let mut row = row(Framework::Torch, &[("batch_size", "4")], 1.0, 0.01);
        assert!(configured_as(
            &row,
            &[("batch_size".into(), "4".into())],
            None
        ));
        assert!(!configured_as(
            &row,
            &[("batch_size".into(), "1".into())],
            None
        ));
        assert!(
            configured_as(&row, &[], Some(1)),
            "Cell::for_checks has 1 thread"
        );
        assert!(!configured_as(&row, &[], Some(2)));
        // The benchmark's own later value of a knob does not hide the given one.
        row.settings.push("batch_size", "4.0");
        assert!(configured_as(
            &row,
            &[("batch_size".into(), "4".into())],
            None
        ));
    }
}
