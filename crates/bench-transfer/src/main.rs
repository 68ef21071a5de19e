//! Runner: `bench-transfer --help`. Appends one CSV row per measured case.

bench_twin::runner!(bench_transfer::Transfer);
