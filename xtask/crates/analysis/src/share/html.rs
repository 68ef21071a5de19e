//! A run's report as one self-contained HTML page: its style inline, its
//! charts inline SVG, no script, and a content security policy that lets
//! the browser load nothing from anywhere, so that the file can be mailed,
//! attached to an issue or opened offline and shows the same.

use std::fmt::Write as _;

use super::record::{Measurement, RunReport};
use super::text::{environment_line, figure, ran, row_name, status, throughput, time, LEGEND};
use crate::cells::preset_label;

/// Nothing but the inline style: no fetch, image, font, frame or script.
const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'";

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1250px;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}\
th,td{border:1px solid #ccc;padding:0.25em 0.5em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}\
td.number{text-align:right;font-variant-numeric:tabular-nums}\
figure{margin:1.5em 0}figure svg{max-width:100%;height:auto}\
figcaption{font-size:0.9em;color:#555}\
details{margin:0.3em 0}summary{cursor:pointer}\
code{background:#f3f3f3;padding:0 0.2em}";

/// Text as HTML: the five characters that could end an element or an
/// attribute are escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A table: its attribute (`id="rows"`), header cells and rows of
/// (already escaped) cells; a cell starting with `#` is a number,
/// right-aligned (the `#` dropped).
fn table(attribute: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("<table {attribute}>\n<thead><tr>");
    for name in header {
        let _ = write!(out, "<th>{}</th>", escape(name));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for value in row {
            match value.strip_prefix('#') {
                Some(number) => {
                    let _ = write!(out, "<td class=\"number\">{number}</td>");
                }
                None => {
                    let _ = write!(out, "<td>{value}</td>");
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// The page.
pub fn page(report: &RunReport) -> String {
    let run = escape(&report.run);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta http-equiv=\"Content-Security-Policy\" content=\"{POLICY}\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>mlx-vs-torch: run {run}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>mlx-vs-torch: run {run}</h1>\n<p>Written by <code>cargo xtask report --run {run} --html FILE</code>: one file, which loads nothing from elsewhere.</p>\n"
    );
    out.push_str("<h2>Machine and environment</h2>\n");
    let machines: Vec<Vec<String>> = report
        .machines
        .iter()
        .map(|m| vec![escape(&m.devices.join(", ")), escape(&environment_line(m))])
        .collect();
    out.push_str(&table(
        r#"id="machines""#,
        &["Devices", "Environment"],
        &machines,
    ));

    out.push_str("<h2>MLX speed-up</h2>\n");
    let speedups: Vec<Vec<String>> = report
        .speedups
        .iter()
        .map(|s| {
            vec![
                escape(&s.device),
                escape(&s.title),
                escape(&s.case),
                escape(&s.label()),
                escape(&s.precision),
                escape(&format!(
                    "{} ({}; {})",
                    s.mode,
                    ran(s.torch.as_ref()),
                    ran(s.mlx.as_ref())
                )),
                format!("#{}", escape(&time(s.torch.as_ref()))),
                format!("#{}", escape(&time(s.mlx.as_ref()))),
                format!("#{}", escape(&s.text)),
                escape(&s.noise),
            ]
        })
        .collect();
    out.push_str(&table(
        r#"id="speedups""#,
        &[
            "Device",
            "Benchmark",
            "Case",
            "Preset and knobs",
            "Precision",
            "Mode (ran: PyTorch; MLX)",
            "PyTorch time (s)",
            "MLX time (s)",
            "MLX speed-up [95% CI]",
            "Noise",
        ],
        &speedups,
    ));
    let _ = writeln!(out, "<p>{}</p>", escape(LEGEND));

    out.push_str("<h2>Charts</h2>\n");
    if report.charts.is_empty() {
        out.push_str("<p>No chart: the run has no twin pair.</p>\n");
    }
    for chart in &report.charts {
        let _ = write!(
            out,
            "<figure class=\"chart\">\n{}\n<figcaption>{}</figcaption>\n</figure>\n",
            chart.svg.trim(),
            escape(&chart.caption)
        );
    }

    out.push_str("<h2>Every row</h2>\n");
    let rows: Vec<Vec<String>> = report.rows.iter().map(row_cells).collect();
    out.push_str(&table(
        r#"id="rows""#,
        &[
            "Device",
            "Benchmark",
            "Case",
            "Framework",
            "Precision",
            "Preset and knobs",
            "Mode",
            "Median (s)",
            "IQR (s)",
            "n",
            "Throughput",
            "Status",
        ],
        &rows,
    ));

    out.push_str("<h2>Every setting</h2>\n");
    for m in &report.rows {
        let settings: Vec<Vec<String>> = m
            .settings
            .iter()
            .map(|(key, value)| vec![escape(key), escape(value)])
            .collect();
        let _ = write!(
            out,
            "<details>\n<summary>{}</summary>\n{}</details>\n",
            escape(&row_name(m)),
            table(r#"class="settings""#, &["Setting", "Value"], &settings)
        );
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn row_cells(m: &Measurement) -> Vec<String> {
    vec![
        escape(&m.device),
        escape(&m.benchmark),
        escape(&m.case),
        escape(&m.framework),
        escape(&m.precision),
        escape(&preset_label(&m.preset, &m.knobs)),
        escape(&m.mode),
        format!("#{}", figure(m.median_s)),
        format!("#{}", figure(m.iqr_s)),
        format!("#{}", m.repetitions.map_or("-".into(), |n| n.to_string())),
        format!("#{}", escape(&throughput(m))),
        escape(&status(m)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cannot_open_an_element() {
        assert_eq!(
            escape("<img src=\"http://x\"> & 'y'"),
            "&lt;img src=&quot;http://x&quot;&gt; &amp; &#39;y&#39;"
        );
    }
}
