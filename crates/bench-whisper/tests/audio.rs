//! WAV input: every sample format, channels averaged, any rate resampled
//! to 16 kHz; bad files are clear errors that name the file.

mod common;

use std::f32::consts::PI;
use std::path::Path;

use bench_whisper::audio::{read_wav, resample};
use common::scratch_dir;

fn write_wav(path: &Path, spec: hound::WavSpec, frames: &[Vec<f32>]) {
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for frame in frames {
        for &x in frame {
            match (spec.sample_format, spec.bits_per_sample) {
                (hound::SampleFormat::Float, _) => writer.write_sample(x).unwrap(),
                (_, 8) => writer.write_sample((x * 127.0) as i8).unwrap(),
                (_, 16) => writer.write_sample((x * 32767.0) as i16).unwrap(),
                (_, bits) => writer
                    .write_sample((x * ((1i64 << (bits - 1)) - 1) as f32) as i32)
                    .unwrap(),
            }
        }
    }
    writer.finalize().unwrap();
}

fn tone(frequency: f32, rate: u32, seconds: f32) -> Vec<f32> {
    (0..(rate as f32 * seconds) as usize)
        .map(|i| 0.5 * (2.0 * PI * frequency * i as f32 / rate as f32).sin())
        .collect()
}

/// Largest difference from a 16 kHz tone, away from the clip's edges.
fn error_against_tone(samples: &[f32], frequency: f32) -> f32 {
    let expected = tone(frequency, 16000, samples.len() as f32 / 16000.0 + 1.0);
    samples[400..samples.len() - 400]
        .iter()
        .zip(&expected[400..])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

#[test]
fn stereo_44k_int16_becomes_16k_mono() {
    let dir = scratch_dir("stereo");
    let path = dir.join("stereo.wav");
    let left = tone(440.0, 44100, 0.5);
    // the right channel is the left one inverted plus a second tone: the
    // average is half the second tone only
    let right_extra = tone(1000.0, 44100, 0.5);
    let frames: Vec<Vec<f32>> = left
        .iter()
        .zip(&right_extra)
        .map(|(&l, &r)| vec![l, -l + 2.0 * r * 0.5])
        .collect();
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    write_wav(&path, spec, &frames);
    let audio = read_wav(&path).unwrap();
    assert_eq!((audio.source_rate, audio.source_channels), (44100, 2));
    assert_eq!(audio.samples.len(), 8000);
    let halved: Vec<f32> = audio.samples.iter().map(|x| x * 2.0).collect();
    let error = error_against_tone(&halved, 1000.0);
    assert!(error < 1e-3, "resampled tone is off by {error}");
}

#[test]
fn every_sample_format_reads_alike() {
    let dir = scratch_dir("formats");
    let samples = tone(300.0, 16000, 0.25);
    let frames: Vec<Vec<f32>> = samples.iter().map(|&x| vec![x]).collect();
    for (bits, format, tolerance) in [
        (8, hound::SampleFormat::Int, 1e-2),
        (16, hound::SampleFormat::Int, 1e-4),
        (24, hound::SampleFormat::Int, 1e-6),
        (32, hound::SampleFormat::Int, 1e-6),
        (32, hound::SampleFormat::Float, 0.0),
    ] {
        let path = dir.join(format!("{bits}-{format:?}.wav"));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16000,
            bits_per_sample: bits,
            sample_format: format,
        };
        write_wav(&path, spec, &frames);
        let audio = read_wav(&path).unwrap();
        let error = audio
            .samples
            .iter()
            .zip(&samples)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(error <= tolerance, "{bits}-bit {format:?}: off by {error}");
    }
}

#[test]
fn resampling_keeps_tones_and_removes_what_cannot_be_kept() {
    // upsampling 8 kHz -> 16 kHz keeps a 1 kHz tone
    let up = resample(&tone(1000.0, 8000, 1.0), 8000, 16000);
    assert_eq!(up.len(), 16000);
    assert!(error_against_tone(&up, 1000.0) < 1e-3);
    // downsampling 48 kHz -> 16 kHz keeps 2 kHz and removes 12 kHz (above
    // the new Nyquist frequency, it would alias to 4 kHz)
    let mixed: Vec<f32> = tone(2000.0, 48000, 1.0)
        .iter()
        .zip(tone(12000.0, 48000, 1.0))
        .map(|(a, b)| a + b)
        .collect();
    let down = resample(&mixed, 48000, 16000);
    assert_eq!(down.len(), 16000);
    assert!(error_against_tone(&down, 2000.0) < 3e-3);
    // same rate: untouched
    assert_eq!(resample(&[0.1, 0.2], 16000, 16000), vec![0.1, 0.2]);
}

fn error_text(path: &Path) -> String {
    format!("{:#}", read_wav(path).unwrap_err())
}

#[test]
fn bad_audio_is_a_clear_error_naming_the_file() {
    let dir = scratch_dir("bad-audio");

    let not_wav = dir.join("notes.wav");
    std::fs::write(&not_wav, "these are not audio samples").unwrap();
    let error = error_text(&not_wav);
    assert!(
        error.contains("notes.wav") && error.contains("not a readable WAV"),
        "{error}"
    );

    let empty = dir.join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let error = error_text(&empty);
    assert!(
        error.contains("empty.wav") && error.contains("not a readable WAV"),
        "{error}"
    );

    let missing = dir.join("missing.wav");
    assert!(error_text(&missing).contains("missing.wav"));

    // a valid file cut short in its data chunk
    let whole = dir.join("whole.wav");
    let frames: Vec<Vec<f32>> = tone(440.0, 16000, 0.5).iter().map(|&x| vec![x]).collect();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    write_wav(&whole, spec, &frames);
    let bytes = std::fs::read(&whole).unwrap();
    let truncated = dir.join("truncated.wav");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let error = error_text(&truncated);
    assert!(
        error.contains("truncated.wav") && error.contains("truncated"),
        "{error}"
    );

    // a header with no samples
    let silent = dir.join("no-samples.wav");
    write_wav(&silent, spec, &[]);
    let error = error_text(&silent);
    assert!(
        error.contains("no-samples.wav") && error.contains("no samples"),
        "{error}"
    );
}
