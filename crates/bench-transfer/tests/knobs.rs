//! The declared knobs: the parsing reads only them, bad values get clear
//! errors (never panic text), a mistyped key names the one meant.

bench_core::knob_tests! {
    benchmark: bench_twin::Runner::<bench_transfer::Transfer>::new(),
    parse: |cell| bench_transfer::SwitchConfig::for_cell(cell).map(drop),
    typo: ("iteration", "iterations"),
    bad: ("n", "-1", "out of range"),
}
