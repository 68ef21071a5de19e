use std::fmt;

/// A cell that cannot run here (no such device, precision unsupported):
/// reported as a skipped row with this reason, not as a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for Unavailable {}

/// Returns the skip reason when `error` (or anything it wraps) is [`Unavailable`].
pub fn unavailable_reason(error: &anyhow::Error) -> Option<String> {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Unavailable>())
        .map(|unavailable| unavailable.0.clone())
}

/// How the frameworks say an allocation failed, lower case: libtorch
/// ("CUDA out of memory", "CUDA error: out of memory", its CPU allocator's
/// "can't allocate memory"), MLX ("[malloc] Unable to allocate",
/// "[metal::malloc] ...", "cudaMallocAsync failed: out of memory"), CUDA's
/// own names for the error, and Rust's allocator ("memory allocation of N
/// bytes failed"). A bare "cudaMalloc" is not enough: it also fails when
/// there is no device at all.
const OUT_OF_MEMORY: &[&str] = &[
    "out of memory",
    "[metal::malloc]",
    "[malloc] unable to allocate",
    "cudaerrormemoryallocation",
    "cuda_error_out_of_memory",
    "cublas_status_alloc_failed",
    "can't allocate memory",
    "memory allocation of",
];

/// The failed row's reason when `message` (an error, a panic, a runner's
/// output) says memory ran out: "out of memory", the cell's size settings
/// (`sizes`, e.g. "preset=paper; batch_size=1024") and the framework's own
/// words, without the panic or `unwrap` text around them. None otherwise.
pub fn out_of_memory_reason(message: &str, sizes: &str) -> Option<String> {
    let detail = out_of_memory_detail(message)?;
    Some(format!("out of memory ({sizes}): {detail}"))
}

/// The part of `message` that names the allocation failure: the stretch
/// around the first match between line breaks (real or escaped, as in a
/// Debug-printed error) and quotes, shortened at a sentence end.
fn out_of_memory_detail(message: &str) -> Option<String> {
    let lower = message.to_lowercase();
    let at = OUT_OF_MEMORY
        .iter()
        .filter_map(|phrase| lower.find(phrase))
        .min()?;
    // Lower-casing keeps byte offsets only for ASCII; fall back to the phrase.
    if lower.len() != message.len() {
        return Some("out of memory".into());
    }
    let is_break = |text: &str| text.starts_with(['\n', '"', '`']) || text.starts_with("\\n");
    let start = (0..at)
        .rev()
        .find(|&i| message.is_char_boundary(i) && is_break(&message[i..]))
        .map_or(0, |i| {
            i + if message[i..].starts_with("\\n") {
                2
            } else {
                1
            }
        });
    let end = (at..message.len())
        .find(|&i| message.is_char_boundary(i) && is_break(&message[i..]))
        .unwrap_or(message.len());
    let mut detail = message[start..end].trim().trim_end_matches(['(', ')']);
    for wrapper in ["Torch(", "error: ", "Error: "] {
        detail = detail.strip_prefix(wrapper).unwrap_or(detail);
    }
    Some(shorten(detail.trim(), 200))
}

/// `text` cut to at most `max` bytes, at its last sentence end if it has one.
fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = &text[..cut];
    match head.rfind(". ") {
        Some(end) => head[..=end].to_owned(),
        None => format!("{head}…"),
    }
}

/// The size settings of a cell for an out-of-memory reason: the preset and
/// every `--set` knob, e.g. "preset=paper; batch_size=1024".
pub fn size_settings(preset: &str, options: &[(String, String)]) -> String {
    std::iter::once(format!("preset={preset}"))
        .chain(options.iter().map(|(key, value)| format!("{key}={value}")))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: &str = "preset=paper; batch_size=1024";

    #[test]
    fn libtorch_out_of_memory_panic_becomes_a_reason_without_the_panic() {
        let panic = "called `Result::unwrap()` on an `Err` value: Torch(\"CUDA out of memory. \
            Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 139.81 GiB of which \
            2.19 GiB is free. Including non-PyTorch memory, this process has 137.60 GiB memory \
            in use. Of the allocated memory 130.1 GiB is allocated by PyTorch.\\nException \
            raised from malloc at c10/cuda/CUDACachingAllocator.cpp:1383\")";
        let reason = out_of_memory_reason(panic, SIZES).unwrap();
        assert!(
            reason.starts_with(
                "out of memory (preset=paper; batch_size=1024): CUDA out of memory. \
                 Tried to allocate 20.00 GiB."
            ),
            "{reason}"
        );
        for noise in ["unwrap", "Err", "Torch(", "Exception raised", "\\n"] {
            assert!(!reason.contains(noise), "{noise} in {reason}");
        }
        assert!(reason.len() < 260, "{reason}");
    }

    #[test]
    fn mlx_allocation_failures_are_out_of_memory() {
        for (message, detail) in [
            (
                "step 3: [metal::malloc] Attempting to allocate 96905199616 bytes which is \
                 greater than the maximum allowed buffer size of 17179869184 bytes.",
                "step 3: [metal::malloc] Attempting to allocate 96905199616 bytes",
            ),
            (
                "[malloc] Unable to allocate 4294967296 bytes.",
                "[malloc] Unable to allocate 4294967296 bytes.",
            ),
            (
                "forward: cudaMallocAsync(&data, size, stream) failed: out of memory",
                "forward: cudaMallocAsync(&data, size, stream) failed: out of memory",
            ),
            (
                "terminate called after throwing an instance of 'std::runtime_error'\n  \
                 what():  cudaMalloc failed: out of memory\nAborted",
                "what():  cudaMalloc failed: out of memory",
            ),
        ] {
            let reason = out_of_memory_reason(message, SIZES).unwrap();
            assert!(
                reason.starts_with("out of memory (preset=paper; batch_size=1024): ")
                    && reason.contains(detail),
                "{reason}"
            );
        }
    }

    #[test]
    fn other_failures_are_not_out_of_memory() {
        for message in [
            "cudaMalloc failed: no CUDA-capable device is detected",
            "CUDA error: an illegal memory access was encountered",
            "shape mismatch: [2, 3] vs [3, 2]",
            "",
        ] {
            assert_eq!(out_of_memory_reason(message, SIZES), None, "{message}");
        }
    }

    #[test]
    fn sizes_are_the_preset_and_every_knob() {
        let options = [("batch_size".to_owned(), "1024".to_owned())];
        assert_eq!(size_settings("paper", &options), SIZES);
        assert_eq!(size_settings("quick", &[]), "preset=quick");
    }
}
