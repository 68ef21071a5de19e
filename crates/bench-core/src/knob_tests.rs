//! The knob tests every benchmark crate runs (`tests/knobs.rs`), through
//! [`knob_tests!`](crate::knob_tests): what the runner's check lets pass,
//! the benchmark's parsing must take without panicking.

use anyhow::Result;

use crate::cell::Cell;
use crate::cli::Benchmark;
use crate::knobs;

/// Values that have broken option parsing before: zero, negatives, not a
/// number, empty, out of any range, not finite.
pub const BAD_VALUES: &[&str] = &["0", "-1", "x", "", "1e999", "NaN", "99999999999999999999"];

/// For each benchmark's tests: every declared knob with each of
/// [`BAD_VALUES`] goes through the runner's check and, where the check lets
/// it pass, through `parse` (the benchmark's option parsing). Returns every
/// failure reason that reads like a crash (panic or unwrap text), as
/// "key=value: reason"; an empty list is the pass.
pub fn crash_reasons(
    benchmark: &dyn Benchmark,
    parse: impl Fn(&Cell) -> Result<()>,
) -> Vec<String> {
    let crash_like = |reason: &str| {
        ["panicked", "unwrap", "called `Result", "called `Option"]
            .iter()
            .any(|text| reason.contains(text))
    };
    let mut crashes = Vec::new();
    for knob in benchmark.knobs() {
        for value in BAD_VALUES {
            let options = vec![(knob.name.to_owned(), (*value).to_owned())];
            let reason = match knobs::check(benchmark.name(), benchmark.knobs(), &options) {
                Err(error) => format!("{error:#}"),
                Ok(()) => {
                    let cell = Cell {
                        options,
                        knobs: benchmark.knobs(),
                        ..Cell::for_checks()
                    };
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse(&cell))) {
                        Ok(Ok(())) => continue,
                        Ok(Err(error)) => format!("{error:#}"),
                        Err(_) => "panicked".to_owned(),
                    }
                }
            };
            if crash_like(&reason) {
                crashes.push(format!("{}={value}: {reason}", knob.name));
            }
        }
    }
    crashes
}

/// The knob tests every benchmark crate runs (`tests/knobs.rs`): the
/// parsing reads only declared knobs, bad values never give panic text, a
/// mistyped key names the one meant, and a bad value says what is wrong.
///
/// ```ignore
/// bench_core::knob_tests! {
///     benchmark: bench_transfer::Transfer,
///     parse: |cell| bench_transfer::SwitchConfig::for_cell(cell).map(drop),
///     typo: ("iteration", "iterations"),
///     bad: ("n", "-1", "out of range"),
/// }
/// ```
#[macro_export]
macro_rules! knob_tests {
    (
        benchmark: $benchmark:expr,
        parse: $parse:expr,
        typo: ($typo:literal, $meant:literal),
        bad: ($key:literal, $value:literal, $says:literal) $(,)?
    ) => {
        fn parse(cell: &$crate::Cell) -> anyhow::Result<()> {
            let parse: fn(&$crate::Cell) -> anyhow::Result<()> = $parse;
            parse(cell)
        }

        #[test]
        fn every_knob_the_parsing_reads_is_declared() {
            use $crate::cli::Benchmark;
            let cell = $crate::Cell {
                knobs: $benchmark.knobs(),
                ..$crate::Cell::for_checks()
            };
            parse(&cell).unwrap();
        }

        #[test]
        fn bad_values_get_clear_errors_never_panic_text() {
            let crashes = $crate::knob_tests::crash_reasons(&$benchmark, parse);
            assert!(crashes.is_empty(), "{crashes:#?}");
        }

        #[test]
        fn a_mistyped_knob_names_the_one_meant_and_a_bad_value_is_refused() {
            use $crate::cli::Benchmark;
            let check = |key: &str, value: &str| {
                let options = [(key.to_owned(), value.to_owned())];
                let knobs = $benchmark.knobs();
                let error = $crate::knobs::check($benchmark.name(), knobs, &options).unwrap_err();
                format!("{error:#}")
            };
            let error = check($typo, "3");
            assert!(
                error.contains(concat!("did you mean '", $meant, "'?")),
                "{error}"
            );
            let error = check($key, $value);
            assert!(error.contains($says), "{error}");
        }
    };
}
