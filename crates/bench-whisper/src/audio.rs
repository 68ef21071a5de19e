//! Audio input: a WAV file of any sample rate and sample format, mono or
//! multi-channel, as 16 kHz mono float samples.

use std::path::Path;

use anyhow::{ensure, Context, Result};

use crate::mel::SAMPLE_RATE;

/// A clip ready for the front end.
#[derive(Clone, Debug)]
pub struct Audio {
    /// Mono, 16 kHz, in [-1, 1].
    pub samples: Vec<f32>,
    pub source_rate: u32,
    pub source_channels: u16,
}

impl Audio {
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / SAMPLE_RATE as f64
    }
}

/// Reads a WAV file: integer samples are scaled to [-1, 1], channels are
/// averaged, and the result is resampled to 16 kHz. Not WAV, empty,
/// truncated or silent-by-length files are errors that name the file.
pub fn read_wav(path: &Path) -> Result<Audio> {
    let context = || format!("reading audio {}", path.display());
    let reader = hound::WavReader::open(path)
        .map_err(|e| anyhow::anyhow!("not a readable WAV file: {e}"))
        .with_context(context)?;
    let spec = reader.spec();
    ensure!(
        spec.channels > 0,
        "{}: the WAV header says 0 channels",
        path.display()
    );
    let declared = reader.len() as usize;
    let interleaved = read_samples(reader)
        .with_context(|| format!("the data chunk declares {declared} samples"))
        .with_context(context)?;
    ensure!(
        !interleaved.is_empty(),
        "{}: the WAV file has no samples",
        path.display()
    );
    let channels = spec.channels as usize;
    let mono: Vec<f32> = interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    Ok(Audio {
        samples: resample(&mono, spec.sample_rate, SAMPLE_RATE),
        source_rate: spec.sample_rate,
        source_channels: spec.channels,
    })
}

/// Every sample as float; hound reports a data chunk that ends early as an
/// I/O error, which is kept (a truncated file is an error, not a shorter clip).
fn read_samples<R: std::io::Read>(mut reader: hound::WavReader<R>) -> Result<Vec<f32>> {
    let spec = reader.spec();
    let samples: Result<Vec<f32>, hound::Error> = match spec.sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().collect(),
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|s| s as f32 * scale))
                .collect()
        }
    };
    samples.map_err(|e| anyhow::anyhow!("the WAV data is truncated or corrupt: {e}"))
}

/// Zero crossings of the sinc on each side of an output sample, at the
/// filter's cutoff: the quality of the resampler.
const SINC_ZERO_CROSSINGS: f64 = 32.0;

/// Band-limited resampling by a Blackman-windowed sinc, evaluated at each
/// output instant (any rational or irrational ratio). The cutoff is 95% of
/// the lower Nyquist frequency, so that downsampling does not alias.
///
/// Written here rather than taken from a streaming resampler crate: the
/// whole clip is at hand, so each output sample is one dot product, with no
/// chunking or delay to account for.
pub fn resample(input: &[f32], from_rate: u32, to_rate: u32) -> Vec<f32> {
    if from_rate == to_rate || input.is_empty() {
        return input.to_vec();
    }
    let ratio = to_rate as f64 / from_rate as f64;
    // Cutoff as a fraction of the input's sampling rate (0.5 is Nyquist).
    let cutoff = 0.5 * ratio.min(1.0) * 0.95;
    let half_width = SINC_ZERO_CROSSINGS / (2.0 * cutoff);
    let output_len = (input.len() as f64 * ratio).round() as usize;
    (0..output_len)
        .map(|n| {
            let t = n as f64 / ratio;
            let first = (t - half_width).ceil().max(0.0) as usize;
            let last = ((t + half_width).floor() as usize).min(input.len() - 1);
            let mut sum = 0.0f64;
            for (k, &x) in input.iter().enumerate().take(last + 1).skip(first) {
                let distance = t - k as f64;
                sum += x as f64 * windowed_sinc(distance, cutoff, half_width);
            }
            sum as f32
        })
        .collect()
}

/// 2 fc sinc(2 fc d), Blackman-windowed over |d| <= half_width.
fn windowed_sinc(distance: f64, cutoff: f64, half_width: f64) -> f64 {
    use std::f64::consts::PI;
    let x = 2.0 * cutoff * distance;
    let sinc = if x.abs() < 1e-12 {
        1.0
    } else {
        (PI * x).sin() / (PI * x)
    };
    let position = (distance / half_width + 1.0) / 2.0; // 0..1 across the window
    let window = 0.42 - 0.5 * (2.0 * PI * position).cos() + 0.08 * (4.0 * PI * position).cos();
    2.0 * cutoff * sinc * window
}
