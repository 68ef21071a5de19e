//! The SVG chart of a [`Sweep`]: for each case, a row of two panels,
//! throughput (or time) against the knob with one line per framework
//! (IQR whiskers), and beside it the MLX speed-up with its 95% interval.
//! An axis is logarithmic where its values span more than a factor of 10.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::charts::{draw_legend, tick, DrawResult, Whisker, GREY, MLX, SPEEDUP, TORCH};
use crate::scaling::{Measure, Point, Series, Sweep};
use crate::twins::Titles;

/// Values spanning more than this factor get a log axis.
const LOG_SPAN: f64 = 10.0;

/// Writes each sweep's chart as `<dir>/<file_stem>.svg`; returns
/// (caption, file) in the sweeps' order.
pub fn write(dir: &Path, sweeps: &[Sweep], titles: &Titles) -> Result<Vec<(String, PathBuf)>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for sweep in sweeps {
        let path = dir.join(format!("{}.svg", sweep.file_stem()));
        fs::write(&path, svg(sweep, titles)?)
            .with_context(|| format!("writing {}", path.display()))?;
        written.push((caption(sweep, titles), path));
    }
    Ok(written)
}

/// "BERT against batch_size (GPU: NVIDIA H200, bf16, best, paper; commit
/// 1a2b3c)".
pub fn caption(sweep: &Sweep, titles: &Titles) -> String {
    let title = titles
        .get(&sweep.benchmark)
        .map_or(sweep.benchmark.as_str(), |t| t.0.as_str());
    format!(
        "{title} against {} ({}; commit {})",
        sweep.knob,
        sweep.setting(),
        sweep.commit
    )
}

/// The chart as SVG text.
pub fn svg(sweep: &Sweep, titles: &Titles) -> Result<String> {
    render(&caption(sweep, titles), sweep)
        .map_err(|e| anyhow!("drawing the scaling chart of {}: {e}", sweep.file_stem()))
}

/// One axis: log10 or linear, its range in drawing coordinates.
#[derive(Clone, Copy)]
struct Axis {
    log: bool,
    low: f64,
    high: f64,
}

impl Axis {
    /// Around every value, with a margin; log where they span > 10x.
    fn around(values: impl Iterator<Item = f64>) -> Self {
        let (low, high) = values
            .filter(|v| v.is_finite() && *v > 0.0)
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        if !low.is_finite() {
            return Self {
                log: false,
                low: 0.0,
                high: 1.0,
            };
        }
        if high / low > LOG_SPAN {
            let (low, high) = (low.log10(), high.log10());
            let pad = (high - low) * 0.08;
            Self {
                log: true,
                low: low - pad,
                high: high + pad,
            }
        } else {
            let pad = (high - low).max(high * 0.05) * 0.15;
            Self {
                log: false,
                low: (low - pad).max(0.0),
                high: high + pad,
            }
        }
    }

    /// A value in drawing coordinates.
    fn at(&self, value: f64) -> f64 {
        if self.log {
            value.log10()
        } else {
            value
        }
    }

    /// A tick's label: the value it stands for.
    fn label(&self, at: f64) -> String {
        match self.log {
            true => tick(&at),
            false if at <= 0.0 => "0".into(),
            // Three significant digits, no trailing zeros.
            false => tick(&at.log10()),
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.low..self.high
    }
}

/// An x axis with its ticks at the knob's values, which plotters'
/// evenly spaced ticks would miss.
struct KnobAxis {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ranged for KnobAxis {
    /// The labels come from the panel's formatter.
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

/// What a line draws of a point.
type Pick = fn(&Point) -> Option<Whisker>;

type Panel<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<KnobAxis, RangedCoordf64>>;

/// Each case's row of panels under the caption.
fn render(caption: &str, sweep: &Sweep) -> DrawResult<String> {
    let rows = sweep.cases.len() as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 60 + 380 * rows)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(caption, ("sans-serif", 20))?;
        for (area, series) in root
            .split_evenly((sweep.cases.len(), 1))
            .iter()
            .zip(&sweep.cases)
        {
            let (left, right) = area.split_horizontally(680);
            draw_measure(&left, &sweep.knob, series)?;
            draw_speedup(&right, &sweep.knob, series)?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// Axes with a tick at each knob value.
fn panel<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
    (knob, points): (&str, &[Point]),
    y: Axis,
    y_desc: &str,
) -> DrawResult<Panel<'a, 'b>> {
    let x = Axis::around(points.iter().map(|p| p.x));
    let ticks: Vec<f64> = points.iter().map(|p| x.at(p.x)).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(
            KnobAxis {
                inner: x.range().into(),
                ticks,
            },
            y.range(),
        )?;
    let x_label = |at: &f64| {
        points
            .iter()
            .find(|p| (x.at(p.x) - at).abs() < 1e-9)
            .map_or_else(|| x.label(*at), |p| p.value.clone())
    };
    let y_label = |at: &f64| y.label(*at);
    let x_desc = if x.log {
        format!("{knob} (log scale)")
    } else {
        knob.to_owned()
    };
    chart
        .configure_mesh()
        .x_label_formatter(&x_label)
        .y_labels(8)
        .y_label_formatter(&y_label)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()?;
    Ok(chart)
}

/// Throughput or time per framework against the knob.
fn draw_measure(
    area: &DrawingArea<SVGBackend, Shift>,
    knob: &str,
    series: &Series,
) -> DrawResult<()> {
    let values = series
        .points
        .iter()
        .flat_map(|p| [p.torch, p.mlx])
        .flatten()
        .flat_map(|(a, b, c)| [a, b, c]);
    let y = Axis::around(values);
    let (what, unit) = match &series.measure {
        Measure::Throughput(unit) => ("throughput (IQR whiskers)", unit.as_str()),
        Measure::Time => ("median time per repetition (IQR whiskers)", "s"),
    };
    let log = if y.log { ", log scale" } else { "" };
    let mut chart = panel(
        area,
        &format!("{}: {what}", series.case),
        (knob, &series.points),
        y,
        &format!("{unit}{log}"),
    )?;
    let lines: [(RGBColor, &str, Pick); 2] =
        [(TORCH, "PyTorch", |p| p.torch), (MLX, "MLX", |p| p.mlx)];
    for (color, name, pick) in lines {
        draw_line(&mut chart, &series.points, (y, pick), color, name)?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

/// The MLX speed-up against the knob, around a line at 1.
fn draw_speedup(
    area: &DrawingArea<SVGBackend, Shift>,
    knob: &str,
    series: &Series,
) -> DrawResult<()> {
    let values = series
        .points
        .iter()
        .filter_map(|p| p.speedup)
        .flat_map(|(a, b, c)| [a, b, c])
        .chain([1.0]);
    let y = Axis::around(values);
    let log = if y.log { " (log scale)" } else { "" };
    let mut chart = panel(
        area,
        &format!("{}: MLX speed-up, 95% interval", series.case),
        (knob, &series.points),
        y,
        &format!("PyTorch time / MLX time{log}"),
    )?;
    let (low, high) = area_x(&series.points);
    let one = y.at(1.0);
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(low, one), (high, one)],
        GREY.stroke_width(1),
    )))?;
    draw_line(
        &mut chart,
        &series.points,
        (y, |p| p.speedup),
        SPEEDUP,
        "MLX speed-up (above 1: MLX faster)",
    )?;
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

/// The x axis' ends in drawing coordinates.
fn area_x(points: &[Point]) -> (f64, f64) {
    let x = Axis::around(points.iter().map(|p| p.x));
    (x.low, x.high)
}

/// One framework's (or the speed-up's) line through its medians, with
/// whiskers and markers, named in the legend.
fn draw_line(
    chart: &mut Panel,
    points: &[Point],
    (y, pick): (Axis, Pick),
    color: RGBColor,
    name: &str,
) -> DrawResult<()> {
    let x = Axis::around(points.iter().map(|p| p.x));
    let drawn: Vec<(f64, Whisker)> = points
        .iter()
        .filter_map(|p| Some((x.at(p.x), pick(p)?)))
        .collect();
    if drawn.is_empty() {
        return Ok(());
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            drawn
                .iter()
                .map(|&(at, (_, middle, _))| (at, y.at(middle)))
                .collect::<Vec<_>>(),
            color.stroke_width(2),
        )))?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
    chart.draw_series(drawn.iter().map(|&(at, (low, middle, high))| {
        ErrorBar::new_vertical(at, y.at(low), y.at(middle), y.at(high), color.filled(), 10)
    }))?;
    chart.draw_series(
        drawn
            .iter()
            .map(|&(at, (_, middle, _))| Circle::new((at, y.at(middle)), 4, color.filled())),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scaling::Measure;
    use bench_core::Execution;

    fn point(x: f64, torch: f64, mlx: f64) -> Point {
        Point {
            x,
            value: format!("{x}"),
            torch: Some((torch * 0.9, torch, torch * 1.1)),
            mlx: Some((mlx * 0.9, mlx, mlx * 1.1)),
            speedup: Some((mlx / torch * 0.8, mlx / torch, mlx / torch * 1.2)),
        }
    }

    fn sweep(xs: &[f64]) -> Sweep {
        Sweep {
            machine: "GPU: NVIDIA H200".into(),
            benchmark: "bert".into(),
            preset: "paper".into(),
            precision: "bf16".into(),
            mode: Execution::Best,
            knob: "batch_size".into(),
            fixed: Default::default(),
            commit: "abc".into(),
            cases: vec![Series {
                case: "step".into(),
                measure: Measure::Throughput("samples/s".into()),
                points: xs.iter().map(|&x| point(x, 10.0 * x, 20.0 * x)).collect(),
            }],
        }
    }

    #[test]
    fn the_chart_names_both_frameworks_the_speedup_and_every_knob_value() {
        let titles: Titles = [("bert".to_owned(), ("BERT".to_owned(), "step".to_owned()))].into();
        let svg = svg(&sweep(&[1.0, 8.0, 32.0, 64.0]), &titles).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        for text in [
            "BERT against batch_size (GPU: NVIDIA H200, bf16, best, paper; commit abc)",
            "step: throughput (IQR whiskers)",
            "step: MLX speed-up, 95% interval",
            "PyTorch",
            "MLX speed-up (above 1: MLX faster)",
            "samples/s, log scale",
            "batch_size (log scale)",
            // Text stands on a line of its own in plotters' SVG.
            "\n32\n",
            "\n64\n",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
    }

    #[test]
    fn an_axis_is_logarithmic_only_beyond_a_factor_of_ten() {
        assert!(Axis::around([1.0, 64.0].into_iter()).log);
        assert!(!Axis::around([1.0, 10.0].into_iter()).log);
        let titles = Titles::new();
        let svg = svg(&sweep(&[2.0, 4.0]), &titles).unwrap();
        assert!(!svg.contains("log scale"), "a 2x span drawn on a log axis");
    }
}
