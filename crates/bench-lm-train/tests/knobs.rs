//! The declared knobs: the parsing reads only them, bad values get clear
//! errors (never panic text), a mistyped key names the one meant.

bench_core::knob_tests! {
    benchmark: bench_twin::Runner::<bench_lm_train::LmTrain>::new(),
    parse: |cell| bench_lm_train::LmConfig::for_cell(cell).map(drop),
    typo: ("batchsize", "batch_size"),
    bad: ("layers", "-1", "out of range"),
}
