//! OpenBLAS's kernel choice for the CPU. Debian 12's OpenBLAS 0.3.21 does
//! not know recent server CPUs (e.g. a Xeon reported as "Intel(R) Xeon(R)
//! Processor") and falls back to its Prescott (SSE3) kernels, several times
//! slower: MLX's CPU matmuls (which go through OpenBLAS) then measure the
//! fallback, not MLX. Naming the core by the CPU's instruction set fixes
//! that; libtorch is unaffected (its own BLAS). The choice is read when the
//! library loads, so it must be in a runner's environment before it starts:
//! `cargo xtask` sets it for itself and so for every process it starts.
//! A value already set is kept; rows show the core in their device name.

const VARIABLE: &str = "OPENBLAS_CORETYPE";

/// The OpenBLAS core for a CPU with these `/proc/cpuinfo` flags.
pub fn core_for(flags: &str) -> Option<&'static str> {
    let has = |flag: &str| flags.split_whitespace().any(|f| f == flag);
    if has("avx512f") {
        Some("SkylakeX")
    } else if has("avx2") {
        Some("Haswell")
    } else {
        None
    }
}

/// Sets `OPENBLAS_CORETYPE` from this machine's CPU unless it is set.
/// Call first thing in `main`, before any thread starts.
pub fn set_default_core() {
    if std::env::var_os(VARIABLE).is_some() {
        return;
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = cpuinfo
        .lines()
        .find_map(|line| {
            line.strip_prefix("flags")
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or_default();
    if let Some(core) = core_for(flags) {
        std::env::set_var(VARIABLE, core);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_widest_vector_unit_names_the_core() {
        assert_eq!(
            core_for("fpu sse3 avx avx2 avx512f avx512bw"),
            Some("SkylakeX")
        );
        assert_eq!(core_for("fpu sse3 avx avx2 fma"), Some("Haswell"));
        assert_eq!(core_for("fpu sse3"), None);
        // A flag is a whole word: avx2 is not avx512f's prefix match.
        assert_eq!(core_for("avx512fx"), None);
    }
}
