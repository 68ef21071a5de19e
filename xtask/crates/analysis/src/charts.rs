//! One SVG chart per benchmark (plotters' SVG back-end: text is left to
//! the viewer's fonts, so no font library is needed): the headline
//! configurations' median times, PyTorch beside MLX with IQR whiskers, and
//! below them the ratios (MLX speed-up with its 95% interval, and each
//! twin / fastest reference).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use bench_core::stats::quantile;
use bench_core::{Execution, Framework, Row};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::references::{Group, Side};
use crate::results::samples;
use crate::twins::{Pair, Titles};

pub(crate) const TORCH: RGBColor = RGBColor(0xee, 0x4c, 0x2c);
pub(crate) const MLX: RGBColor = RGBColor(0x1f, 0x6f, 0xb4);
pub(crate) const SPEEDUP: RGBColor = RGBColor(0x2c, 0x8c, 0x3c);
pub(crate) const GREY: RGBColor = RGBColor(0x88, 0x88, 0x88);

/// One configuration on the chart's x axis.
struct Column {
    label: String,
    /// (q1, median, q3) per twin.
    torch: Option<(f64, f64, f64)>,
    mlx: Option<(f64, f64, f64)>,
    /// (low, ratio, high) of the MLX speed-up; low = high = ratio without samples.
    speedup: Option<(f64, f64, f64)>,
    /// Twin / fastest reference, PyTorch's and MLX's.
    torch_reference: Option<(f64, f64, f64)>,
    mlx_reference: Option<(f64, f64, f64)>,
}

/// Writes `<dir>/<benchmark>.svg` for each benchmark with headline pairs;
/// returns (benchmark, file) in name order.
pub fn write(
    dir: &Path,
    pairs: &[Pair],
    references: &BTreeMap<Group, BTreeMap<Framework, Side>>,
    titles: &Titles,
) -> Result<Vec<(String, PathBuf)>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for (benchmark, svg) in svgs(pairs, references, titles)? {
        let path = dir.join(format!("{benchmark}.svg"));
        fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        written.push((benchmark, path));
    }
    Ok(written)
}

/// The chart of each benchmark with headline pairs, as SVG text:
/// (benchmark, svg) in name order.
pub fn svgs(
    pairs: &[Pair],
    references: &BTreeMap<Group, BTreeMap<Framework, Side>>,
    titles: &Titles,
) -> Result<Vec<(String, String)>> {
    let mut by_benchmark: BTreeMap<&str, Vec<Column>> = BTreeMap::new();
    for pair in pairs {
        let group = (
            pair.machine.clone(),
            pair.benchmark.clone(),
            pair.preset.clone(),
            pair.precision.clone(),
        );
        // References stand beside the best mode only.
        let sides = references
            .get(&group)
            .filter(|_| pair.mode == Execution::Best);
        let versus = |framework: Framework| {
            let fastest = sides?.get(&framework)?.references.first()?;
            let ratio = fastest.ratio?;
            let (low, high) = fastest.interval.map_or((ratio, ratio), |i| (i.low, i.high));
            Some((low, ratio, high))
        };
        let speedup = pair.speedup().map(|ratio| {
            let (low, high) = pair.interval().map_or((ratio, ratio), |i| (i.low, i.high));
            (low, ratio, high)
        });
        by_benchmark
            .entry(&pair.benchmark)
            .or_default()
            .push(Column {
                label: format!(
                    "{} {} {} ({})",
                    pair.machine
                        .trim_start_matches("GPU: ")
                        .trim_start_matches("NVIDIA "),
                    pair.precision,
                    pair.mode,
                    pair.preset
                ),
                torch: pair.torch.as_deref().and_then(quartiles),
                mlx: pair.mlx.as_deref().and_then(quartiles),
                speedup,
                torch_reference: versus(Framework::Torch),
                mlx_reference: versus(Framework::Mlx),
            });
    }
    by_benchmark
        .into_iter()
        .map(|(benchmark, columns)| {
            let title = titles.get(benchmark).map_or(benchmark, |t| t.0.as_str());
            let svg = render(title, &columns)
                .map_err(|e| anyhow!("drawing the {benchmark} chart: {e}"))?;
            Ok((benchmark.to_owned(), svg))
        })
        .collect()
}

/// (q1, median, q3) of a row: from its repetitions where recorded, else
/// the median with the recorded IQR split evenly around it.
pub(crate) fn quartiles(row: &Row) -> Option<(f64, f64, f64)> {
    if let Some(samples) = samples(row) {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        return Some((
            quantile(&sorted, 0.25),
            quantile(&sorted, 0.5),
            quantile(&sorted, 0.75),
        ));
    }
    let median = row.median_s().filter(|m| *m > 0.0)?;
    let half = row.summary.as_ref().map_or(0.0, |s| s.iqr) / 2.0;
    Some(((median - half).max(median / 10.0), median, median + half))
}

/// Log-scale bounds around every value, with room above for the legend.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (low, high) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if low.is_finite() {
        (low / 1.5, high * 1.5 * (high / low).powf(0.35).max(2.0))
    } else {
        (0.1, 10.0)
    }
}

/// The label of a tick on a log10 axis: its value, three significant
/// digits, no trailing zeros. (Plotting log10 on a linear axis gives evenly
/// spaced, labelled ticks; plotters' log axis labels decades only.)
pub(crate) fn tick(log10: &f64) -> String {
    let value = 10f64.powf(*log10);
    let digits = (2 - value.abs().log10().floor() as i32).max(0) as usize;
    let text = format!("{value:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

pub(crate) type DrawResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// One half of the chart, drawn on.
type Panel<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// (low, middle, high) of one whisker.
pub(crate) type Whisker = (f64, f64, f64);

/// What a series draws of a column.
type Pick = fn(&Column) -> Option<Whisker>;

/// The chart: median times above, ratios below.
fn render(title: &str, columns: &[Column]) -> DrawResult<String> {
    let width = (260 * columns.len() as u32).max(720);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, 760)).into_drawing_area();
        root.fill(&WHITE)?;
        let (top, bottom) = root.split_vertically(420);
        draw_times(&top, title, columns)?;
        draw_ratios(&bottom, columns)?;
        root.present()?;
    }
    Ok(svg)
}

/// The upper half: each twin's median time with its IQR whiskers.
fn draw_times(
    area: &DrawingArea<SVGBackend, Shift>,
    title: &str,
    columns: &[Column],
) -> DrawResult<()> {
    let times = columns
        .iter()
        .flat_map(|c| [c.torch, c.mlx])
        .flatten()
        .flat_map(|(a, b, c)| [a, b, c]);
    let mut chart = panel(
        area,
        (
            &format!("{title}: median time per repetition (IQR whiskers)"),
            20,
        ),
        columns,
        bounds(times),
        "seconds (log scale)",
    )?;
    let series: [(f64, RGBColor, &str, Pick); 2] = [
        (-0.12, TORCH, "PyTorch", |c| c.torch),
        (0.12, MLX, "MLX", |c| c.mlx),
    ];
    for (offset, color, name, pick) in series {
        let points = points(columns, offset, pick);
        draw_whiskers(&mut chart, &points, color, name)?;
        chart.draw_series(
            points
                .iter()
                .map(|&(x, (_, median, _))| Circle::new((x, median.log10()), 5, color.filled())),
        )?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// The lower half: the MLX speed-up and each twin / its fastest reference,
/// with their 95% intervals, around a line at 1.
fn draw_ratios(area: &DrawingArea<SVGBackend, Shift>, columns: &[Column]) -> DrawResult<()> {
    let ratios = columns
        .iter()
        .flat_map(|c| [c.speedup, c.torch_reference, c.mlx_reference])
        .flatten()
        .flat_map(|(a, b, c)| [a, b, c])
        .chain([1.0]);
    let mut chart = panel(
        area,
        (
            "ratios, 95% interval whiskers (above 1: MLX faster / twin faster than its reference)",
            16,
        ),
        columns,
        bounds(ratios),
        "ratio (log scale)",
    )?;
    let n = columns.len();
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(-0.5, 0.0), (n as f64 - 0.5, 0.0)],
        GREY.stroke_width(1),
    )))?;
    let series: [(f64, RGBColor, &str, Pick); 3] = [
        (-0.15, SPEEDUP, "MLX speed-up (PyTorch / MLX time)", |c| {
            c.speedup
        }),
        (
            0.0,
            TORCH,
            "PyTorch twin / fastest PyTorch reference",
            |c| c.torch_reference,
        ),
        (0.15, MLX, "MLX twin / fastest MLX reference", |c| {
            c.mlx_reference
        }),
    ];
    for (offset, color, name, pick) in series {
        let points = points(columns, offset, pick);
        if points.is_empty() {
            continue;
        }
        draw_whiskers(&mut chart, &points, color, name)?;
        chart.draw_series(points.iter().map(|&(x, (_, ratio, _))| {
            TriangleMarker::new((x, ratio.log10()), 6, color.filled())
        }))?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// A half's axes on a log10 scale between `(low, high)`: one column per
/// configuration, labelled below, and its caption (text, font size) above.
fn panel<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    (caption, size): (&str, u32),
    columns: &[Column],
    (low, high): (f64, f64),
    y_desc: &str,
) -> DrawResult<Panel<'a, 'b>> {
    let n = columns.len();
    // Columns sit at 0, 1, ..: asked for n labels over this range,
    // plotters puts them at the integers (a step of 1).
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", size))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, low.log10()..high.log10())?;
    let label = |x: &f64| {
        let column = x.round();
        match columns.get(column.max(0.0) as usize) {
            Some(c) if (x - column).abs() < 1e-6 => c.label.clone(),
            _ => String::new(),
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&label)
        .y_labels(8)
        .y_label_formatter(&tick)
        .y_desc(y_desc)
        .draw()?;
    Ok(chart)
}

/// The columns that have what `pick` takes, at their x plus `offset`.
fn points(columns: &[Column], offset: f64, pick: Pick) -> Vec<(f64, Whisker)> {
    columns
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((i as f64 + offset, pick(c)?)))
        .collect()
}

/// One series' whiskers, named in the legend.
fn draw_whiskers(
    chart: &mut Panel,
    points: &[(f64, Whisker)],
    color: RGBColor,
    name: &str,
) -> DrawResult<()> {
    chart
        .draw_series(points.iter().map(|&(x, (low, middle, high))| {
            ErrorBar::new_vertical(
                x,
                low.log10(),
                middle.log10(),
                high.log10(),
                color.filled(),
                10,
            )
        }))?
        .label(name)
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    Ok(())
}

/// The series' labels in a box at `position`, for every chart of the report.
pub(crate) fn draw_legend<'a, 'b: 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
    position: SeriesLabelPosition,
) -> DrawResult<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::{row, set_iqr, temp_dir};
    use crate::twins::pairs;

    #[test]
    fn one_svg_per_benchmark_with_both_twins_and_the_ratio() {
        let rows: Vec<Row> = [("torch", 2.0), ("mlx", 1.0)]
            .into_iter()
            .map(|(framework, median)| Row {
                samples_s: vec![median * 0.9, median, median * 1.1],
                ..row(framework, "switch", median, "r")
            })
            .collect();
        let refs: Vec<&Row> = rows.iter().collect();
        let titles: Titles = [(
            "transfer".to_owned(),
            ("CPU/GPU switch".to_owned(), "switch".to_owned()),
        )]
        .into();
        let pairs = pairs(&refs, &titles);
        let dir = temp_dir("charts");
        let written = write(&dir, &pairs, &BTreeMap::new(), &titles).unwrap();
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].1, dir.join("transfer.svg"));
        let svg = fs::read_to_string(&written[0].1).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        for text in [
            "CPU/GPU switch: median time",
            "PyTorch",
            "MLX speed-up",
            "CPU: EPYC (2 cores) f32 best (quick)",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        // No reference rows: no reference series.
        assert!(!svg.contains("fastest MLX reference"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn quartiles_fall_back_to_the_recorded_iqr() {
        let mut row = row("mlx", "switch", 1.0, "r");
        set_iqr(&mut row, 0.2);
        assert_eq!(quartiles(&row), Some((0.9, 1.0, 1.1)));
        row.samples_s = vec![1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quartiles(&row), Some((2.0, 3.0, 4.0)));
    }

    #[test]
    fn ticks_are_short() {
        let at = |v: f64| tick(&v.log10());
        assert_eq!(at(0.6000000000000001), "0.6");
        assert_eq!(at(0.00225), "0.00225");
        assert_eq!(at(2.0), "2");
        assert_eq!(at(1234.6), "1235");
    }
}
