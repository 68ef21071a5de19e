//! The one interface between the harness and a framework.

use crate::dims::DeviceKind;

/// A framework, bound to one device and precision for the life of a process.
///
/// Implemented by the adapter crates. The harness uses it to synchronise
/// before reading the clock and to read memory figures; benchmarks use the
/// adapters' own types for model code.
pub trait Runtime {
    fn device(&self) -> DeviceKind;
    /// Waits until all work queued on the device has finished.
    fn synchronize(&self) -> anyhow::Result<()>;
    /// Peak memory the framework's allocator reports since the last reset,
    /// where it reports one.
    fn peak_memory_bytes(&self) -> Option<u64>;
    fn reset_peak_memory(&self);
    /// A one-line description of the device, e.g. "cpu" or "cuda:0 NVIDIA H100".
    fn device_description(&self) -> String;
}
