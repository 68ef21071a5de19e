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
