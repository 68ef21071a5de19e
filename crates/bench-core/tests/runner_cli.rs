//! The runner's command line: help text, version, knobs in `--help`, and
//! knobs refused before anything runs.

use anyhow::Result;
use bench_core::cli::{self, Benchmark, CellOutput, RunnerArgs};
use bench_core::{Cell, Kind, Knob};
use clap::FromArgMatches;

struct Sizer;

const KNOBS: &[Knob] = &[
    Knob::at_least("n", 1, "512", "N of the N x N matrices"),
    Knob::new("audio", Kind::Path, "the jfk clip", "a WAV file"),
];

impl Benchmark for Sizer {
    fn name(&self) -> &'static str {
        "sized"
    }
    fn knobs(&self) -> &'static [Knob] {
        KNOBS
    }
    fn run(&self, cell: &Cell) -> Result<CellOutput> {
        // Reading a knob that KNOBS does not declare is refused.
        cell.option::<usize>("undeclared")?;
        unreachable!("undeclared knobs are not read")
    }
}

fn args(argv: &[&str]) -> Result<RunnerArgs, clap::Error> {
    let matches = cli::command("1.2.3", "Sizes things.", &Sizer).try_get_matches_from(argv)?;
    RunnerArgs::from_arg_matches(&matches)
}

#[test]
fn help_has_a_description_every_option_explained_and_the_knobs() {
    let mut command = cli::command("1.2.3", "Sizes things.", &Sizer);
    let help = command.render_long_help().to_string();
    assert!(help.contains("Sizes things."), "{help}");
    assert!(help.contains("N of the N x N matrices"), "{help}");
    assert!(help.contains("a whole number >= 1"), "{help}");
    assert!(help.contains("--execution <EXECUTION>"), "{help}");
    for arg in command.get_arguments() {
        assert!(
            arg.get_help().is_some(),
            "--{} has no help text",
            arg.get_id()
        );
    }
    let version = args(&["bench-sized", "--version"]).unwrap_err();
    assert_eq!(version.kind(), clap::error::ErrorKind::DisplayVersion);
    assert_eq!(version.to_string(), "bench-sized 1.2.3\n");
}

#[test]
fn knobs_are_checked_and_unscoped_before_anything_runs() {
    let mut given = args(&["bench-sized", "--set", "sized.n=64", "--execution", "eager"]).unwrap();
    cli::check_options(&Sizer, &mut given).unwrap();
    assert_eq!(given.options, [("n".to_owned(), "64".to_owned())]);
    assert_eq!(given.execution, bench_core::Execution::Eager);

    for (set, expected) in [
        ("m=3", "sized has no knob 'm'; did you mean 'n'?"),
        (
            "n=0",
            "--set n=0: out of range (expected a whole number >= 1)",
        ),
        ("n=many", "not a whole number"),
        ("audio=", "empty"),
        ("other.n=3", "no benchmark is called 'other'"),
        // A cell's dimension, not a knob: --execution.
        ("execution=eager", "sized has no knob 'execution'"),
    ] {
        let mut bad = args(&["bench-sized", "--set", set]).unwrap();
        let error = format!("{:#}", cli::check_options(&Sizer, &mut bad).unwrap_err());
        assert!(error.contains(expected), "{set}: {error}");
    }
}

#[test]
fn a_list_of_values_gives_one_cell_per_value_and_a_bad_element_is_named() {
    let mut given = args(&["bench-sized", "--set", "sized.n=64-256*2,1000"]).unwrap();
    let cells = cli::check_options(&Sizer, &mut given).unwrap();
    let values: Vec<&str> = cells.iter().map(|cell| cell[0].1.as_str()).collect();
    assert_eq!(values, ["64", "128", "256", "1000"]);
    assert!(cells.iter().all(|cell| cell.len() == 1 && cell[0].0 == "n"));
    let mut bad = args(&["bench-sized", "--set", "n=8,0"]).unwrap();
    let error = format!("{:#}", cli::check_options(&Sizer, &mut bad).unwrap_err());
    assert_eq!(
        error,
        "--set n=8,0: the element 0 is out of range (expected a whole number >= 1)"
    );
}

#[test]
fn reading_an_undeclared_knob_is_an_error_not_a_silent_default() {
    let cell = Cell {
        knobs: KNOBS,
        ..Cell::for_checks()
    };
    let error = Sizer.run(&cell).unwrap_err().to_string();
    assert!(error.contains("does not declare"), "{error}");
}
