//! The declared knobs: the parsing reads only them, bad values get clear
//! errors (never panic text), a mistyped key names the closest one.

use bench_core::{knobs, Cell};

fn parse(cell: &Cell) -> anyhow::Result<()> {
    bench_transfer::SwitchConfig::for_cell(cell).map(drop)
}

#[test]
fn every_knob_the_parsing_reads_is_declared() {
    let cell = Cell {
        knobs: bench_transfer::workload::KNOBS,
        ..Cell::for_checks()
    };
    parse(&cell).unwrap();
}

#[test]
fn bad_values_get_clear_errors_never_panic_text() {
    let crashes = knobs::crash_reasons(&bench_transfer::Transfer, parse);
    assert!(crashes.is_empty(), "{crashes:#?}");
}

#[test]
fn a_mistyped_knob_names_the_closest_and_a_bad_size_is_refused() {
    let check = |key: &str, value: &str| {
        let options = [(key.to_owned(), value.to_owned())];
        format!(
            "{:#}",
            knobs::check("transfer", bench_transfer::workload::KNOBS, &options).unwrap_err()
        )
    };
    let error = check("iteration", "3");
    assert!(error.contains("did you mean 'iterations'?"), "{error}");
    let error = check("n", "-1");
    assert!(error.contains("out of range"), "{error}");
}
