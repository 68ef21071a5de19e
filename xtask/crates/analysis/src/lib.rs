//! The suite's results: `reports/raw/` read back ([`results`]), the report
//! (reports/RESULTS.md, the README's results, one SVG chart per benchmark
//! and one per swept knob, [`report::generate`]), one run's report to share
//! (HTML, Markdown, CSV, JSON: [`share`]), `cargo xtask compare`
//! ([`compare::run`]), two runs cell by cell or the devices side by side,
//! and the verdict of the GPU capture self-test ([`selftest::run`]).
//! A cell is never pooled or compared with one at other knob values
//! ([`identity`]).
//!
//! Modules, each using only those listed before it:
//! identity, results, uncertainty, twins, cells, references, charts,
//! scaling, scaling_chart, devices, compare, share, superseded (results
//! only), report, selftest (results only).

pub mod compare;
pub mod report;
pub mod selftest;
pub mod share;

mod cells;
mod charts;
mod devices;
mod fastest;
mod identity;
#[cfg(test)]
mod knobs_apart;
mod references;
mod results;
mod scaling;
mod scaling_chart;
mod superseded;
mod twins;
mod uncertainty;

/// For `cargo xtask bench`'s summary: the twins paired, with the
/// speed-up's interval and noise flag, as the report pairs them.
pub use twins::{pairs, Pair, Titles};
pub use uncertainty::{Interval, NO_CLEAR_WINNER};
