//! Runner: `bench-lm-train --help`. Appends one CSV row per measured case.

bench_twin::runner!(bench_lm_train::LmTrain);
