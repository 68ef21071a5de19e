//! `cargo xtask report --run ID`: one run's report, to share. `--html FILE`
//! writes one self-contained HTML page (machine and environment, the
//! speed-up table with intervals, inline SVG charts, every row and every
//! setting); `--format md|csv|json` prints the same to stdout for pasting
//! into an issue. Every export prints one record ([`record::RunReport`]).

mod html;
mod record;
mod text;

#[cfg(test)]
mod browser_tests;

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use bench_core::Row;
use clap::ValueEnum;

use crate::twins::Titles;
pub use record::RunReport;

/// A text export of a run's report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Markdown tables, for an issue or a pull request.
    Md,
    /// One line per row, with its pair's speed-up and its environment.
    Csv,
    /// The whole record.
    Json,
}

/// The report of one run's rows in `format`.
pub fn render(report: &RunReport, format: Format) -> Result<String> {
    match format {
        Format::Md => Ok(text::markdown(report)),
        Format::Csv => text::csv(report),
        Format::Json => text::json(report),
    }
}

/// The report of `rows` as one HTML page.
pub fn html_page(report: &RunReport) -> String {
    html::page(report)
}

/// Writes `rows`' HTML page to `html` and prints `format` to stdout.
pub fn run(
    rows: &[Row],
    titles: &Titles,
    html: Option<&Path>,
    format: Option<Format>,
) -> Result<()> {
    let report = RunReport::of(rows, titles)?;
    if let Some(path) = html {
        fs::write(path, html_page(&report))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "report: run {} ({} rows, {} charts) -> {}",
            report.run,
            report.rows.len(),
            report.charts.len(),
            path.display()
        );
    }
    // Without --html, Markdown.
    if let Some(format) = format.or(html.is_none().then_some(Format::Md)) {
        print!("{}", render(&report, format)?);
    }
    Ok(())
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::cells::tests::knob_row;

    pub fn titles() -> Titles {
        [(
            "transfer".to_owned(),
            ("CPU/GPU switch".to_owned(), "switch".to_owned()),
        )]
        .into()
    }

    /// A run that sweeps n over 64, 256 and 1024 (MLX 2x, 4x, 8x faster),
    /// a copy case at quick's n, and a failed PyTorch cell at n=4096.
    pub fn swept_run() -> Vec<Row> {
        let mut rows = Vec::new();
        for (n, torch, mlx) in [(64, 2.0, 1.0), (256, 8.0, 2.0), (1024, 32.0, 4.0)] {
            for (framework, median) in [("torch", torch), ("mlx", mlx)] {
                let knobs = format!("n={n}");
                let settings = "threads=2;execution=eager;note=<b>&";
                let mut row = knob_row(framework, "switch", median, "r1", (&knobs, settings));
                row.throughput = Some(n as f64 / median);
                row.throughput_unit = "elements/s".into();
                rows.push(row);
            }
        }
        for (framework, median) in [("torch", 3.0), ("mlx", 1.5)] {
            rows.push(knob_row(framework, "copy", median, "r1", ("", "n=512")));
        }
        let mut failed = knob_row("torch", "-", 0.0, "r1", ("n=4096", ""));
        failed.summary = None;
        failed.samples_s.clear();
        failed.status = bench_core::Status::Failed;
        failed.reason = "out of memory".into();
        rows.push(failed);
        rows
    }

    #[test]
    fn every_format_holds_the_speedups_with_intervals_and_every_setting() {
        let report = RunReport::of(&swept_run(), &titles()).unwrap();
        let speedups: Vec<(String, String, f64)> = report
            .speedups
            .iter()
            .map(|s| (s.case.clone(), s.label(), s.speedup.unwrap()))
            .collect();
        assert_eq!(
            speedups,
            [
                ("copy".into(), "quick".into(), 2.0),
                ("switch".into(), "quick, n=64".into(), 2.0),
                ("switch".into(), "quick, n=256".into(), 4.0),
                ("switch".into(), "quick, n=1024".into(), 8.0),
            ]
        );
        // The switch case's chart and its scaling chart against n.
        let captions: Vec<&str> = report.charts.iter().map(|c| c.caption.as_str()).collect();
        assert_eq!(
            captions,
            [
                "CPU/GPU switch",
                "CPU/GPU switch against n (CPU: EPYC (2 cores), f32, best, quick; commit abc)"
            ]
        );
        let md = render(&report, Format::Md).unwrap();
        let interval = report.speedups[3].text.clone();
        assert!(interval.starts_with("8.00x ["), "{interval}");
        for text in [
            "# mlx-vs-torch: run r1",
            "- CPU: EPYC (2 cores): OS Linux; CPU EPYC (2 cores); RAM 24 GiB;",
            &format!("| switch | quick, n=1024 | f32 | best (eager; eager) | 32.00 (IQR 1%) | 4.000 (IQR 1%) | {interval} |"),
            "| transfer | switch | mlx | f32 | quick, n=256 | best | 2.000 |",
            "| transfer | - | torch | f32 | quick, n=4096 | best | - | - | - | - | failed: out of memory |",
            "`threads=2;execution=eager;note=<b>&;n=64`",
        ] {
            assert!(md.contains(text), "{text:?} not in:\n{md}");
        }
        let csv = render(&report, Format::Csv).unwrap();
        let mut lines = csv.lines();
        assert!(lines
            .next()
            .unwrap()
            .starts_with("run_id,device,benchmark,case,framework"));
        assert_eq!(lines.count(), report.rows.len());
        assert!(csv.contains(",n=1024,best,ok,,32.0,"), "{csv}");
        let json: serde_json::Value =
            serde_json::from_str(&render(&report, Format::Json).unwrap()).unwrap();
        assert_eq!(json["speedups"][3]["speedup"], 8.0);
        assert!(json["speedups"][3]["interval_low"].as_f64().unwrap() < 8.0);
        assert_eq!(json["rows"][0]["settings"]["n"], "64");
        assert_eq!(json["machines"][0]["environment"]["cpu"], "EPYC");
    }

    #[test]
    fn the_page_escapes_what_the_rows_hold() {
        let page = html_page(&RunReport::of(&swept_run(), &titles()).unwrap());
        assert!(
            page.contains("<td>note</td><td>&lt;b&gt;&amp;</td>"),
            "{page}"
        );
        assert!(!page.contains("<b>&"));
        assert_eq!(page.matches("<svg").count(), 2);
    }

    #[test]
    fn a_run_without_rows_is_refused() {
        let error = RunReport::of(&[], &titles()).unwrap_err();
        assert!(error.to_string().contains("no rows"), "{error}");
    }
}
