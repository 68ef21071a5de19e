//! Runner: `bench-bert --help`. Appends one CSV row per measured case.

bench_twin::runner!(bench_bert::Bert);
