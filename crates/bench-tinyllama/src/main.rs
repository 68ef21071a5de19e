//! Runner: `bench-tinyllama --help`. Appends one CSV row per measured case.

bench_twin::runner!(bench_tinyllama::TinyLlama);
