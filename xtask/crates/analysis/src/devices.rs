//! `cargo xtask compare --devices`: each device's MLX speed-up side by
//! side, from the runs the README's table shows for it (one commit per
//! device, [`twins::headline`]), for the configurations that devices ran
//! alike: benchmark, precision, mode, preset and every knob
//! ([`bench_core::Row::configuration`]). The configurations that no other
//! device ran so are named, with what the other devices ran instead.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use bench_core::{Execution, Row};

use crate::twins::{self, ratio_cell, Pair, Titles};
use crate::uncertainty::NO_CLEAR_WINNER;

/// Benchmark, precision and mode: what devices are compared on, before
/// preset and knobs.
type Work = (String, String, Execution);

/// Per work, per configuration (preset and knobs), each device's pair.
type ByDevice<'a> = BTreeMap<Work, BTreeMap<String, BTreeMap<String, Pair<'a>>>>;

/// The side-by-side table of every device's headline runs among `rows`,
/// then what does not match and which runs each device's column is.
pub fn table(rows: &[Row], titles: &Titles, suite: &[String]) -> String {
    let history = twins::history(rows, suite);
    let headline = twins::headline(&history);
    let mut found: ByDevice = BTreeMap::new();
    for run in &headline {
        for pair in twins::pairs(&run.rows, titles) {
            if pair.speedup().is_none() {
                continue;
            }
            let work = (pair.benchmark.clone(), pair.precision.clone(), pair.mode);
            found
                .entry(work)
                .or_default()
                .entry(pair.preset.clone())
                .or_default()
                .insert(pair.machine.clone(), pair);
        }
    }
    let title = |benchmark: &str| {
        titles
            .get(benchmark)
            .map_or(benchmark.to_owned(), |t| t.0.clone())
    };
    let mut out = String::from(
        "Each device's MLX speed-up (PyTorch median / MLX median, above 1: MLX is faster) [95% interval], from the runs of one commit per device (as the README's table), side by side where the devices ran the same benchmark, precision, mode, preset and knobs.\n\n",
    );
    if headline.len() < 2 {
        let devices: Vec<&str> = headline.iter().map(|r| r.machine.as_str()).collect();
        let _ = writeln!(
            out,
            "Fewer than two devices have results ({}): nothing to put side by side.",
            if devices.is_empty() {
                "none".to_owned()
            } else {
                devices.join(", ")
            }
        );
        return out;
    }
    out.push_str(&side_by_side(&found, &title));
    out.push_str(&unmatched(&found, &title));
    out.push_str("\nThe devices' runs:\n");
    for run in &headline {
        let runs: BTreeSet<&str> = run.rows.iter().map(|r| r.run_id.as_str()).collect();
        let _ = writeln!(
            out,
            "- {}: commit `{}`, {} run(s)",
            run.machine,
            run.commit,
            runs.len()
        );
    }
    out
}

/// The configurations that two or more devices ran, a column per device.
fn side_by_side(found: &ByDevice, title: &dyn Fn(&str) -> String) -> String {
    let matched: Vec<(&Work, &String, &BTreeMap<String, Pair>)> = found
        .iter()
        .flat_map(|(work, configurations)| {
            configurations
                .iter()
                .filter(|(_, devices)| devices.len() > 1)
                .map(move |(configuration, devices)| (work, configuration, devices))
        })
        .collect();
    if matched.is_empty() {
        return "No configuration was run on two devices with the same preset and knobs.\n"
            .to_owned();
    }
    let machines: BTreeSet<&String> = matched.iter().flat_map(|m| m.2.keys()).collect();
    let mut out = String::from("| Benchmark | Preset, knobs | Precision | Mode |");
    for machine in &machines {
        let _ = write!(out, " {machine} |");
    }
    out.push_str("\n|---|---|---|---|");
    out.push_str(&"---|".repeat(machines.len()));
    out.push('\n');
    for ((benchmark, precision, mode), configuration, devices) in matched {
        let _ = write!(
            out,
            "| {} | {configuration} | {precision} | {mode} |",
            title(benchmark)
        );
        for machine in &machines {
            let cell = devices.get(*machine).map_or("-".to_owned(), |p| {
                let ratio = ratio_cell(p.speedup(), p.interval());
                if p.undecided() {
                    format!("{ratio}; {NO_CLEAR_WINNER}")
                } else {
                    ratio
                }
            });
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out
}

/// What did not match: where devices ran the same work at other presets or
/// knobs, each configuration and where; then what one device alone ran.
fn unmatched(found: &ByDevice, title: &dyn Fn(&str) -> String) -> String {
    let mut differ = String::new();
    // (device, benchmark, configuration) -> "precision mode" of each.
    let mut alone: BTreeMap<(&str, &str, &str), Vec<String>> = BTreeMap::new();
    for ((benchmark, precision, mode), configurations) in found {
        let devices: BTreeSet<&String> = configurations.values().flat_map(|d| d.keys()).collect();
        if let [device] = devices.into_iter().collect::<Vec<_>>()[..] {
            for configuration in configurations.keys() {
                alone
                    .entry((device, benchmark, configuration))
                    .or_default()
                    .push(format!("{precision} {mode}"));
            }
            continue;
        }
        if configurations.values().all(|devices| devices.len() > 1) {
            continue;
        }
        let each: Vec<String> = configurations
            .iter()
            .map(|(configuration, devices)| {
                let names: Vec<&str> = devices.keys().map(String::as_str).collect();
                format!("{configuration} on {}", names.join(" and "))
            })
            .collect();
        let _ = writeln!(
            differ,
            "- {} {precision} {mode}: {}",
            title(benchmark),
            each.join("; ")
        );
    }
    let mut out = String::new();
    if !differ.is_empty() {
        let _ = write!(
            out,
            "\nNot side by side, run at other presets or knobs on other devices:\n{differ}"
        );
    }
    if !alone.is_empty() {
        out.push_str("\nRun on one device only:\n");
        for ((device, benchmark, configuration), works) in alone {
            let _ = writeln!(
                out,
                "- {device}: {} ({configuration}) {}",
                title(benchmark),
                works.join(", ")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::row;
    use bench_core::settings::Pairs;
    use bench_core::{DeviceKind, Preset};

    fn titles() -> Titles {
        [
            (
                "transfer".to_owned(),
                ("CPU/GPU switch".to_owned(), "switch".to_owned()),
            ),
            ("bert".to_owned(), ("BERT".to_owned(), "step".to_owned())),
        ]
        .into()
    }

    /// Both twins of `benchmark` on `gpu` at paper with `knobs`, MLX's
    /// speed-up `speedup`.
    fn twins_on(gpu: &str, benchmark: &str, knobs: &str, speedup: f64) -> Vec<Row> {
        [("torch", speedup), ("mlx", 1.0)]
            .into_iter()
            .map(|(framework, median)| {
                let mut r = row(framework, "switch", median, gpu);
                r.benchmark = benchmark.into();
                r.case = titles()[benchmark].1.clone();
                r.device = DeviceKind::Gpu;
                r.preset = Preset::Paper;
                r.environment.gpu = gpu.into();
                r.knobs = Pairs::decode(knobs);
                r.samples_s = [0.99, 1.0, 1.01].map(|f| f * median).to_vec();
                r
            })
            .collect()
    }

    fn eager(mut rows: Vec<Row>) -> Vec<Row> {
        for row in &mut rows {
            row.execution = Execution::Eager;
        }
        rows
    }

    #[test]
    fn devices_stand_side_by_side_where_preset_and_knobs_match() {
        let rows: Vec<Row> = [
            twins_on("H100", "bert", "", 2.0),
            twins_on("H200", "bert", "", 3.0),
            // The switch at other sizes on each device: not comparable.
            twins_on("H100", "transfer", "", 0.5),
            twins_on("H200", "transfer", "iterations=5;n=2048", 0.4),
            // Eager BERT, the same speed on both twins: no winner.
            eager(twins_on("H100", "bert", "", 1.0)),
            eager(twins_on("H200", "bert", "", 1.5)),
        ]
        .concat();
        let suite = ["bert".to_owned(), "transfer".to_owned()];
        let text = table(&rows, &titles(), &suite);
        assert!(
            text.contains(
                "| Benchmark | Preset, knobs | Precision | Mode | GPU: H100 | GPU: H200 |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| BERT | paper | f32 | best | 2.00x [1.96-2.04, repetitions only] | 3.00x [2.94-3.06, repetitions only] |"),
            "{text}"
        );
        assert!(!text.contains("| CPU/GPU switch |"), "{text}");
        assert!(
            text.contains("| BERT | paper | f32 | eager | 1.00x [0.98-1.02, repetitions only]; no clear winner | 1.50x [1.47-1.53, repetitions only] |"),
            "{text}"
        );
        assert!(
            text.contains("- CPU/GPU switch f32 best: paper on GPU: H100; paper, iterations=5, n=2048 on GPU: H200"),
            "{text}"
        );
        assert!(!text.contains("- BERT"), "{text}");
        assert!(!text.contains("one device only"), "{text}");
        assert!(
            text.contains("- GPU: H200: commit `abc`, 1 run(s)"),
            "{text}"
        );
    }

    #[test]
    fn without_a_match_or_a_second_device_it_says_so() {
        let suite = ["bert".to_owned()];
        let alone = table(&twins_on("H100", "bert", "", 2.0), &titles(), &suite);
        assert!(
            alone.contains("Fewer than two devices have results (GPU: H100)"),
            "{alone}"
        );
        let apart: Vec<Row> = [
            twins_on("H100", "bert", "batch_size=32", 2.0),
            twins_on("H200", "bert", "", 3.0),
            twins_on("H200", "transfer", "", 3.0),
            eager(twins_on("H200", "transfer", "", 3.0)),
        ]
        .concat();
        let text = table(&apart, &titles(), &suite);
        assert!(
            text.contains(
                "No configuration was run on two devices with the same preset and knobs."
            ),
            "{text}"
        );
        assert!(
            text.contains("- BERT f32 best: paper on GPU: H200; paper, batch_size=32 on GPU: H100"),
            "{text}"
        );
        assert!(
            text.contains("Run on one device only:\n- GPU: H200: CPU/GPU switch (paper) f32 best, f32 eager\n"),
            "{text}"
        );
    }

    #[test]
    fn devices_stands_instead_of_the_two_runs() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: crate::compare::CompareArgs,
        }
        let parse = |words: &[&str]| Cli::try_parse_from([&["compare"], words].concat());
        assert!(parse(&["--devices"]).unwrap().args.devices);
        let two = parse(&["a", "b"]).unwrap().args;
        assert_eq!((two.baseline.as_deref(), two.devices), (Some("a"), false));
        assert!(parse(&[]).is_err(), "two runs or --devices");
        assert!(parse(&["a"]).is_err());
        assert!(parse(&["--devices", "a", "b"]).is_err());
        assert!(parse(&["--devices", "--fail-above", "5"]).is_err());
    }
}
