//! The declared knobs: the parsing reads only them, bad values get clear
//! errors (never panic text), a mistyped key names the one meant.

bench_core::knob_tests! {
    benchmark: bench_distributed::Distributed,
    parse: |cell| bench_distributed::workload::Sizes::for_cell(cell).map(drop),
    typo: ("wrold", "world"),
    bad: ("world", "0", "out of range"),
}
