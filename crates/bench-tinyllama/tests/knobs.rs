//! The declared knobs: the parsing reads only them, bad values get clear
//! errors (never panic text), a mistyped key names the one meant.

bench_core::knob_tests! {
    benchmark: bench_twin::Runner::<bench_tinyllama::TinyLlama>::new(),
    parse: |cell| bench_tinyllama::GenerationConfig::for_cell(cell).map(drop),
    typo: ("gen_token", "gen_tokens"),
    bad: ("prompt_tokens", "-1", "out of range"),
}
