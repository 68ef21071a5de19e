//! The declared knobs: the parsing reads only them, bad values get clear
//! errors (never panic text), a mistyped key names the one meant.

bench_core::knob_tests! {
    benchmark: bench_twin::Runner::<bench_whisper::Transcription>::new(),
    parse: |cell| bench_whisper::Options::from_cell(cell).map(drop),
    typo: ("langauge", "language"),
    bad: ("source", "web", "expected auto | hub | offline"),
}
