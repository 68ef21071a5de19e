//! Runner: `bench-distributed --help`. As a runner it launches and watches
//! the cell's ranks; started by a runner as a rank, it is one of them.

use std::process::ExitCode;

fn main() -> ExitCode {
    if bench_distributed::launch::is_rank() {
        return bench_distributed::rank::main();
    }
    bench_core::cli::main(
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_DESCRIPTION"),
        &bench_distributed::Distributed,
        &bench_twin::HOOKS,
    )
}
