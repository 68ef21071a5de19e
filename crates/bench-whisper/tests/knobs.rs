//! The declared knobs: the parsing reads only them, bad values get clear
//! errors (never panic text), a mistyped key names the closest one.

use bench_core::{knobs, Cell};

fn parse(cell: &Cell) -> anyhow::Result<()> {
    bench_whisper::Options::from_cell(cell).map(drop)
}

#[test]
fn every_knob_the_parsing_reads_is_declared() {
    let cell = Cell {
        knobs: bench_whisper::KNOBS,
        ..Cell::for_checks()
    };
    parse(&cell).unwrap();
}

#[test]
fn bad_values_get_clear_errors_never_panic_text() {
    let crashes = knobs::crash_reasons(&bench_whisper::Transcription, parse);
    assert!(crashes.is_empty(), "{crashes:#?}");
}

#[test]
fn a_mistyped_knob_names_the_closest_and_a_bad_choice_is_refused() {
    let check = |key: &str, value: &str| {
        let options = [(key.to_owned(), value.to_owned())];
        format!(
            "{:#}",
            knobs::check("whisper", bench_whisper::KNOBS, &options).unwrap_err()
        )
    };
    let error = check("langauge", "3");
    assert!(error.contains("did you mean 'language'?"), "{error}");
    let error = check("source", "web");
    assert!(error.contains("expected auto | hub | offline"), "{error}");
}
