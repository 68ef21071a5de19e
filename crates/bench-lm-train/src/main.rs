//! Runner: `bench-lm-train --help`. Appends one CSV row per measured case.

fn main() -> std::process::ExitCode {
    bench_core::cli::main(
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_DESCRIPTION"),
        &bench_lm_train::LmTrain,
        &[fw_mlx::HOOKS, fw_torch::HOOKS],
    )
}
