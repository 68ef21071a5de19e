//! OpenBLAS's kernel choice for the CPU. Debian 12's OpenBLAS 0.3.21 does
//! not know recent server CPUs (e.g. a Xeon reported as "Intel(R) Xeon(R)
//! Processor") and falls back to its Prescott (SSE3) kernels, several times
//! slower: MLX's CPU matmuls (which go through OpenBLAS) then measure the
//! fallback, not MLX. Naming the core by the CPU's instruction set fixes
//! that; libtorch is unaffected (its own BLAS).
//!
//! The choice is read when the library loads, before `main`, so a runner
//! that finds it unset starts itself again with it set (the `process`
//! module): a runner measures the same whoever starts it.
//! A value already set is kept; rows record the core in use.

/// The variable OpenBLAS reads when it loads.
pub const VARIABLE: &str = "OPENBLAS_CORETYPE";

/// The core for a CPU with these vector units: the widest one names it.
/// None where OpenBLAS's own detection is right.
pub fn core_for(avx512f: bool, avx2: bool) -> Option<&'static str> {
    if avx512f {
        Some("SkylakeX")
    } else if avx2 {
        Some("Haswell")
    } else {
        None
    }
}

/// The core for this machine's CPU (x86-64 Linux only: elsewhere OpenBLAS's
/// detection stands, and on macOS MLX uses Accelerate, not OpenBLAS).
pub fn core_for_this_cpu() -> Option<&'static str> {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        core_for(
            std::arch::is_x86_feature_detected!("avx512f"),
            std::arch::is_x86_feature_detected!("avx2"),
        )
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        None
    }
}

/// The core this process's OpenBLAS was told to use; empty when none.
pub fn core_in_use() -> String {
    std::env::var(VARIABLE).unwrap_or_default()
}

/// The setting a process started now should get: this CPU's core, unless
/// the variable is set already (a user's choice is kept).
pub fn setting_for_children() -> Option<(&'static str, &'static str)> {
    if std::env::var_os(VARIABLE).is_some() {
        return None;
    }
    core_for_this_cpu().map(|core| (VARIABLE, core))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_widest_vector_unit_names_the_core() {
        assert_eq!(core_for(true, true), Some("SkylakeX"));
        assert_eq!(core_for(false, true), Some("Haswell"));
        assert_eq!(core_for(false, false), None);
    }
}
