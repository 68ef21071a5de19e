//! One memory-bandwidth ceiling per device and sitting, measured without
//! either framework, so that both twins' bandwidth is divided by the same
//! figure.
//!
//! `cargo xtask bench` measures it once per device before the first cell
//! (the `device-ceiling` probe: a threaded host copy here, a device-to-device copy
//! on CUDA, a blit copy on Metal) and hands it to every cell of that device
//! in [`VARIABLE`]; a cell started by hand, without it, measures the same
//! probe in its own process and its row says so (`ceiling_measured`).
//! bench-core knows no framework, and no accelerator either: the host probe
//! is here, the accelerators' in the `device-ceiling` crate.

use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use crate::dims::DeviceKind;
use crate::settings::Settings;
use crate::stats::Summary;

/// The variable that hands a cell its device's ceiling: a [`Ceiling`] as
/// JSON.
pub const VARIABLE: &str = "MLX_VS_TORCH_COPY_CEILING";

/// A device's measured copy bandwidth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ceiling {
    pub device: DeviceKind,
    /// Bytes read plus bytes written per second, in GB/s (1e9), at the
    /// median pass.
    pub gbps: f64,
    /// What was copied, and how, e.g. "memcpy, float32, 2 x 256 MiB, 8
    /// host threads".
    pub probe: String,
    /// Timed passes behind the median.
    pub passes: usize,
    /// Where and when: "once for run <id>, before its cells (<UTC time>)"
    /// or "in this cell's process".
    pub measured: String,
}

impl Ceiling {
    /// The ceiling of timed `samples` (seconds), each pass moving
    /// `bytes_per_pass` (read plus written).
    pub fn of_samples(
        device: DeviceKind,
        samples: &[f64],
        bytes_per_pass: f64,
        probe: String,
    ) -> Result<Self> {
        let median = Summary::of(samples)?.median;
        ensure!(median > 0.0, "the copy probe took no time ({probe})");
        let ceiling = Self {
            device,
            gbps: bytes_per_pass / median / 1e9,
            probe,
            passes: samples.len(),
            measured: "in this cell's process".into(),
        };
        ceiling.check()?;
        Ok(ceiling)
    }

    /// The ceiling that [`VARIABLE`] hands a cell on `device`; None where
    /// it is unset. A value that does not read, or is another device's,
    /// is an error naming the variable.
    pub fn from_env(device: DeviceKind) -> Result<Option<Self>> {
        match std::env::var(VARIABLE) {
            Ok(text) => Self::from_variable(&text, device).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(error) => bail!("{VARIABLE}: {error}"),
        }
    }

    /// A ceiling from [`VARIABLE`]'s value, for a cell on `device`.
    pub fn from_variable(text: &str, device: DeviceKind) -> Result<Self> {
        let ceiling: Self = serde_json::from_str(text)
            .with_context(|| format!("{VARIABLE} is not a copy ceiling: {text}"))?;
        ensure!(
            ceiling.device == device,
            "{VARIABLE} holds the {} ceiling, but this cell runs on the {device}",
            ceiling.device
        );
        ceiling.check().context(VARIABLE)?;
        Ok(ceiling)
    }

    /// [`VARIABLE`]'s value for this ceiling.
    pub fn to_variable(&self) -> String {
        serde_json::to_string(self).expect("a ceiling serialises")
    }

    fn check(&self) -> Result<()> {
        ensure!(
            self.gbps.is_finite() && self.gbps > 0.0,
            "a copy ceiling of {} GB/s is not a bandwidth",
            self.gbps
        );
        Ok(())
    }

    /// `achieved_gbps` as a fraction of this ceiling.
    pub fn fraction(&self, achieved_gbps: f64) -> f64 {
        achieved_gbps / self.gbps
    }

    /// The settings a row that divides by this ceiling records.
    pub fn settings(&self) -> Settings {
        Settings::new()
            .with("ceiling_gbps", format!("{:.2}", self.gbps))
            .with("ceiling_probe", self.probe.as_str())
            .with("ceiling_measured", self.measured.as_str())
    }
}

/// Untimed passes before the timed ones of a probe.
pub const WARMUP_PASSES: usize = 2;
/// Timed passes of a probe; the ceiling is their median.
pub const TIMED_PASSES: usize = 10;

/// Times `pass` [`TIMED_PASSES`] times after [`WARMUP_PASSES`]; each pass
/// must have finished its copy (waited for) when it returns.
pub fn time_passes(mut pass: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    for _ in 0..WARMUP_PASSES {
        pass()?;
    }
    (0..TIMED_PASSES)
        .map(|_| {
            let started = Instant::now();
            pass()?;
            Ok(started.elapsed().as_secs_f64())
        })
        .collect()
}

/// Float32 elements of each host buffer: 256 MiB, far past any CPU's
/// caches.
pub const HOST_ELEMENTS: usize = 1 << 26;

/// The CPU's ceiling: a copy between two float32 buffers, split across
/// `threads` host threads, each chunk copied by the C library's `memcpy`
/// (as fast in a debug build as in a release one). Neither framework's
/// kernel: MLX's elementwise CPU kernels use one thread and PyTorch's all
/// of them, so their own copies would measure the frameworks, not the
/// memory.
pub fn host_ceiling(elements: usize, threads: usize) -> Result<Ceiling> {
    ensure!(elements > 0, "a copy probe of no elements");
    let mut copy = HostCopy::new(elements, threads);
    let samples = time_passes(|| {
        copy.run();
        Ok(())
    })?;
    // The result is read, so the passes cannot be optimised away.
    ensure!(
        copy.probe(elements / 2) == 1.0,
        "the host copy probe copied wrongly"
    );
    let probe = format!(
        "memcpy, float32, 2 x {} MiB, {} host thread{}",
        (elements * 4) >> 20,
        copy.threads,
        if copy.threads == 1 { "" } else { "s" }
    );
    Ceiling::of_samples(DeviceKind::Cpu, &samples, copy.bytes(), probe)
}

/// y = x between float32 buffers, split across threads.
pub struct HostCopy {
    x: Vec<f32>,
    y: Vec<f32>,
    threads: usize,
}

impl HostCopy {
    /// Both buffers are written here, so that page faults stay out of the
    /// timed passes.
    pub fn new(elements: usize, threads: usize) -> Self {
        Self {
            x: vec![1.0; elements],
            y: vec![0.0; elements],
            threads: threads.max(1),
        }
    }

    /// Bytes read plus bytes written by one pass.
    pub fn bytes(&self) -> f64 {
        (2 * self.x.len() * std::mem::size_of::<f32>()) as f64
    }

    /// One pass over the buffers.
    pub fn run(&mut self) {
        let chunk = self.x.len().div_ceil(self.threads).max(1);
        std::thread::scope(|scope| {
            for (x, y) in self.x.chunks(chunk).zip(self.y.chunks_mut(chunk)) {
                scope.spawn(move || y.copy_from_slice(x));
            }
        });
    }

    /// An element of the copy.
    pub fn probe(&self, index: usize) -> f32 {
        self.y[index % self.y.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_element_is_copied() {
        let mut copy = HostCopy::new(1001, 3);
        copy.run();
        assert!((0..1001).all(|i| copy.probe(i) == 1.0));
        assert_eq!(copy.bytes(), 2.0 * 1001.0 * 4.0);
    }

    #[test]
    fn the_host_probe_gives_a_positive_finite_bandwidth() {
        let ceiling = host_ceiling(1 << 20, 2).unwrap();
        assert!(
            ceiling.gbps.is_finite() && ceiling.gbps > 0.0,
            "{ceiling:?}"
        );
        assert_eq!((ceiling.device, ceiling.passes), (DeviceKind::Cpu, 10));
        assert!(
            ceiling.probe.contains("2 host threads"),
            "{}",
            ceiling.probe
        );
    }

    #[test]
    fn a_ceiling_goes_through_the_variable_and_is_checked_there() {
        let ceiling =
            Ceiling::of_samples(DeviceKind::Gpu, &[0.5, 0.25, 1.0], 1e9, "copy".into()).unwrap();
        // The median pass: 1 GB in 0.5 s.
        assert_eq!(ceiling.gbps, 2.0);
        assert_eq!(ceiling.fraction(1.5), 0.75);
        let text = ceiling.to_variable();
        assert_eq!(
            Ceiling::from_variable(&text, DeviceKind::Gpu).unwrap(),
            ceiling
        );
        let other = Ceiling::from_variable(&text, DeviceKind::Cpu).unwrap_err();
        assert!(other.to_string().contains("gpu ceiling"), "{other:#}");
        let garbled = Ceiling::from_variable("3000", DeviceKind::Gpu).unwrap_err();
        assert!(garbled.to_string().contains(VARIABLE), "{garbled:#}");
        let zero = text.replace("\"gbps\":2.0", "\"gbps\":0.0");
        let zero = Ceiling::from_variable(&zero, DeviceKind::Gpu).unwrap_err();
        assert!(format!("{zero:#}").contains("not a bandwidth"), "{zero:#}");
    }

    #[test]
    fn a_row_records_the_ceiling_it_divides_by() {
        let ceiling = Ceiling::of_samples(DeviceKind::Cpu, &[0.1], 2e9, "y=2x".into()).unwrap();
        let settings = ceiling.settings();
        assert_eq!(settings.get("ceiling_gbps").unwrap().to_string(), "20.00");
        assert_eq!(settings.get("ceiling_probe").unwrap().to_string(), "y=2x");
        assert!(settings.get("ceiling_measured").is_some());
    }
}
