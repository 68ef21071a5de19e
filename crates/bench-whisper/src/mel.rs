//! The log-mel front end, as Whisper computes it (`whisper/audio.py`):
//! 16 kHz audio, a 400-point STFT with a periodic Hann window and hop 160,
//! centred frames with reflect padding (`torch.stft(center=True)`), the last
//! frame dropped, power |X|^2, Whisper's mel filter bank, log10 of at least
//! 1e-10, clamped to (maximum - 8), then (x + 4) / 4.
//!
//! Plain Rust, shared by both twins: it is not what is compared, and one
//! front end guarantees that both see the same mel.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use bench_core::host::HostTensor;
use realfft::{RealFftPlanner, RealToComplex};

pub const SAMPLE_RATE: u32 = 16_000;
pub const N_FFT: usize = 400;
pub const HOP_LENGTH: usize = 160;
/// Frequency bins of one frame: N_FFT / 2 + 1.
pub const N_FREQ: usize = N_FFT / 2 + 1;
pub const CHUNK_SECONDS: usize = 30;
/// Samples in one 30-second window.
pub const N_SAMPLES: usize = CHUNK_SECONDS * SAMPLE_RATE as usize;
/// Mel frames in one window.
pub const N_FRAMES: usize = N_SAMPLES / HOP_LENGTH;

pub struct MelFrontEnd {
    n_mels: usize,
    /// Row-major (n_mels, N_FREQ).
    filters: Vec<f32>,
    /// Per mel band, the frequency bins where its filter is not zero: the
    /// bank is sparse, so the product skips the zeros.
    band_ranges: Vec<std::ops::Range<usize>>,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl MelFrontEnd {
    /// A front end with the given (n_mels, 201) filter bank.
    pub fn new(filters: HostTensor) -> Result<Self> {
        ensure!(
            filters.shape.len() == 2 && filters.shape[1] == N_FREQ,
            "mel filters have shape {:?}, expected (n_mels, {N_FREQ})",
            filters.shape
        );
        let n_mels = filters.shape[0];
        let band_ranges = filters
            .data
            .chunks_exact(N_FREQ)
            .map(|row| {
                let first = row.iter().position(|&w| w != 0.0).unwrap_or(0);
                let last = row.iter().rposition(|&w| w != 0.0).map_or(0, |i| i + 1);
                first..last.max(first)
            })
            .collect();
        // Periodic Hann, as torch.hann_window(N_FFT) by default.
        let window = (0..N_FFT)
            .map(|n| {
                let phase = 2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64;
                (0.5 - 0.5 * phase.cos()) as f32
            })
            .collect();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        Ok(Self {
            n_mels,
            filters: filters.data,
            band_ranges,
            window,
            fft,
        })
    }

    /// Whisper's own filter bank from the `whisper-assets` registry copy
    /// (`mel_filters.npz`, keys `mel_80` and `mel_128`).
    pub fn whisper(n_mels: usize) -> Result<Self> {
        let path = bench_core::assets::asset_file("whisper-assets", "mel_filters.npz")?;
        Self::new(read_npz_f32(&path, &format!("mel_{n_mels}"))?)
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// The log-mel spectrogram of 16 kHz samples: (n_mels, len / 160).
    /// The clamp to (maximum - 8) is over the whole of `samples`.
    pub fn log_mel(&self, samples: &[f32]) -> Result<HostTensor> {
        let pad = N_FFT / 2;
        ensure!(
            samples.len() > pad,
            "{} samples are too few for reflect padding: need more than {pad}",
            samples.len()
        );
        let padded = reflect_pad(samples, pad);
        // torch.stft gives 1 + len / hop frames; Whisper drops the last.
        let frames = samples.len() / HOP_LENGTH;
        let mut mel = vec![0f32; self.n_mels * frames];
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut power = vec![0f32; N_FREQ];
        for frame in 0..frames {
            let start = frame * HOP_LENGTH;
            for ((x, &s), &w) in input
                .iter_mut()
                .zip(&padded[start..start + N_FFT])
                .zip(&self.window)
            {
                *x = s * w;
            }
            self.fft
                .process(&mut input, &mut spectrum)
                .map_err(|e| anyhow::anyhow!("FFT of frame {frame}: {e}"))?;
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for (band, range) in self.band_ranges.iter().enumerate() {
                let weights = &self.filters[band * N_FREQ..][range.clone()];
                let energy: f32 = weights
                    .iter()
                    .zip(&power[range.clone()])
                    .map(|(w, p)| w * p)
                    .sum();
                mel[band * frames + frame] = energy.max(1e-10).log10();
            }
        }
        let maximum = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for x in &mut mel {
            *x = (x.max(maximum - 8.0) + 4.0) / 4.0;
        }
        HostTensor::new(vec![self.n_mels, frames], mel)
    }

    /// The encoder inputs for `samples`, as Whisper's `transcribe` makes
    /// them: the audio followed by 30 s of silence is turned into log-mel
    /// once, then cut into consecutive windows of `frames` frames, as many
    /// as the audio needs (without timestamps, each window starts where the
    /// last one ended).
    pub fn windows(&self, samples: &[f32], frames: usize) -> Result<Vec<HostTensor>> {
        ensure!(!samples.is_empty(), "no audio samples to transcribe");
        let mut padded = samples.to_vec();
        padded.resize(samples.len() + frames * HOP_LENGTH, 0.0);
        let mel = self.log_mel(&padded)?;
        // As Whisper: the frames of the audio itself, floor(len / hop).
        let content = mel.shape[1] - frames;
        ensure!(
            content > 0,
            "{} samples are shorter than one {HOP_LENGTH}-sample frame",
            samples.len()
        );
        let windows = (0..content)
            .step_by(frames)
            .map(|start| slice_frames(&mel, start, frames))
            .collect();
        Ok(windows)
    }
}

/// Frames [start, start + count) of a (n_mels, total) spectrogram.
fn slice_frames(mel: &HostTensor, start: usize, count: usize) -> HostTensor {
    let (n_mels, total) = (mel.shape[0], mel.shape[1]);
    let mut data = Vec::with_capacity(n_mels * count);
    for band in 0..n_mels {
        let row = &mel.data[band * total..(band + 1) * total];
        data.extend_from_slice(&row[start..start + count]);
    }
    HostTensor {
        shape: vec![n_mels, count],
        data,
    }
}

/// `pad` samples mirrored on each side, excluding the edge sample
/// (numpy's and torch's "reflect").
fn reflect_pad(samples: &[f32], pad: usize) -> Vec<f32> {
    let n = samples.len();
    let mut out = Vec::with_capacity(n + 2 * pad);
    out.extend((1..=pad).rev().map(|i| samples[i]));
    out.extend_from_slice(samples);
    out.extend((1..=pad).map(|i| samples[n - 1 - i]));
    out
}

/// One float32 array of an `.npz` (a zip of `.npy` files), by key.
pub fn read_npz_f32(path: &Path, key: &str) -> Result<HostTensor> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut archive = zip::ZipArchive::new(file)
        .with_context(|| format!("{} is not an .npz (zip) archive", path.display()))?;
    let entry_name = format!("{key}.npy");
    let mut entry = archive
        .by_name(&entry_name)
        .with_context(|| format!("{} has no array '{key}' (no {entry_name})", path.display()))?;
    let mut bytes = Vec::new();
    entry
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {entry_name} from {}", path.display()))?;
    parse_npy_f32(&bytes).with_context(|| format!("{}: array '{key}'", path.display()))
}

/// A little-endian float32, C-order `.npy` (format versions 1 to 3).
pub fn parse_npy_f32(bytes: &[u8]) -> Result<HostTensor> {
    ensure!(
        bytes.len() >= 10 && bytes.starts_with(b"\x93NUMPY"),
        "not an .npy array (no \\x93NUMPY magic)"
    );
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            ensure!(bytes.len() >= 12, ".npy header truncated");
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        version => bail!(".npy format version {version} is not supported"),
    };
    let data_start = header_start + header_len;
    ensure!(bytes.len() >= data_start, ".npy header truncated");
    let header =
        std::str::from_utf8(&bytes[header_start..data_start]).context(".npy header is not text")?;
    ensure!(
        header.contains("'descr': '<f4'"),
        ".npy array is not little-endian float32: {header}"
    );
    ensure!(
        header.contains("'fortran_order': False"),
        ".npy array is in Fortran order: {header}"
    );
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .with_context(|| format!(".npy header has no shape: {header}"))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .with_context(|| format!("bad .npy dimension '{s}'"))
        })
        .collect::<Result<Vec<_>>>()?;
    let data: Vec<f32> = bytes[data_start..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    HostTensor::new(shape, data).context(".npy data does not fill its shape")
}
