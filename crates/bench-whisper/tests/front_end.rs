//! The log-mel front end against a float64 reference written here from
//! Whisper's definition with a direct DFT (no FFT, no shared code), and
//! its windowing of long audio.

use bench_whisper::mel::{parse_npy_f32, read_npz_f32, MelFrontEnd, HOP_LENGTH, N_FRAMES};

fn filters(n_mels: usize) -> Vec<f64> {
    let path = bench_core::assets::asset_file("whisper-assets", "mel_filters.npz").unwrap();
    let filters = read_npz_f32(&path, &format!("mel_{n_mels}")).unwrap();
    assert_eq!(filters.shape, vec![n_mels, 201]);
    filters.data.iter().map(|&x| x as f64).collect()
}

/// Whisper's log_mel_spectrogram in float64, spelled out.
fn reference_log_mel(samples: &[f32], n_mels: usize) -> Vec<Vec<f64>> {
    let (n_fft, hop) = (400usize, 160usize);
    let n = samples.len() as isize;
    let reflect = |i: isize| -> f64 {
        let j = if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        };
        samples[j as usize] as f64
    };
    let filters = filters(n_mels);
    let frames = samples.len() / hop;
    let mut mel = vec![vec![0.0; frames]; n_mels];
    for (t, _) in (0..frames).enumerate() {
        let mut power = vec![0.0; 201];
        for (f, p) in power.iter_mut().enumerate() {
            let (mut re, mut im) = (0.0, 0.0);
            for k in 0..n_fft {
                let window =
                    0.5 - 0.5 * (2.0 * std::f64::consts::PI * k as f64 / n_fft as f64).cos();
                let x = reflect((t * hop + k) as isize - 200) * window;
                let angle = -2.0 * std::f64::consts::PI * (f * k) as f64 / n_fft as f64;
                re += x * angle.cos();
                im += x * angle.sin();
            }
            *p = re * re + im * im;
        }
        for (m, row) in mel.iter_mut().enumerate() {
            let energy: f64 = (0..201).map(|f| filters[m * 201 + f] * power[f]).sum();
            row[t] = energy.max(1e-10).log10();
        }
    }
    let max = mel.iter().flatten().cloned().fold(f64::MIN, f64::max);
    for x in mel.iter_mut().flatten() {
        *x = (x.max(max - 8.0) + 4.0) / 4.0;
    }
    mel
}

/// Two tones and a little deterministic noise at 16 kHz.
fn test_signal(len: usize) -> Vec<f32> {
    let mut state = 12345u32;
    (0..len)
        .map(|i| {
            let t = i as f32 / 16000.0;
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            0.5 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
                + 0.2 * (2.0 * std::f32::consts::PI * 3000.0 * t).sin()
                + 0.01 * noise
        })
        .collect()
}

#[test]
fn log_mel_matches_a_direct_dft_reference() {
    for n_mels in [80, 128] {
        let samples = test_signal(2450); // 15 frames, not a multiple of the hop
        let front_end = MelFrontEnd::whisper(n_mels).unwrap();
        let mel = front_end.log_mel(&samples).unwrap();
        assert_eq!(mel.shape, vec![n_mels, 2450 / HOP_LENGTH]);
        let reference = reference_log_mel(&samples, n_mels);
        let mut worst = 0f64;
        for (m, row) in reference.iter().enumerate() {
            for (t, &expected) in row.iter().enumerate() {
                let actual = mel.data[m * mel.shape[1] + t] as f64;
                worst = worst.max((actual - expected).abs());
            }
        }
        // float32 FFT vs float64 DFT, in log10 units / 4
        assert!(worst < 1e-4, "{n_mels} mels: worst difference {worst}");
    }
}

#[test]
fn a_tone_lands_in_its_mel_band() {
    let samples: Vec<f32> = (0..16000)
        .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16000.0).sin())
        .collect();
    let front_end = MelFrontEnd::whisper(80).unwrap();
    let mel = front_end.log_mel(&samples).unwrap();
    let frames = mel.shape[1];
    let band_energy: Vec<f32> = (0..80)
        .map(|m| mel.data[m * frames..(m + 1) * frames].iter().sum())
        .collect();
    let loudest = (0..80)
        .max_by(|&a, &b| band_energy[a].total_cmp(&band_energy[b]))
        .unwrap();
    // the band whose filter weighs the 1 kHz bin (1000 / 40 Hz = bin 25) most
    let weights = filters(80);
    let expected = (0..80)
        .max_by(|&a, &b| weights[a * 201 + 25].total_cmp(&weights[b * 201 + 25]))
        .unwrap();
    assert_eq!(loudest, expected);
    // the clamp keeps everything within 8 decades (2 after scaling) of the top
    let max = mel.data.iter().cloned().fold(f32::MIN, f32::max);
    let min = mel.data.iter().cloned().fold(f32::MAX, f32::min);
    assert!(max - min <= 2.0 + 1e-6, "range {min}..{max}");
}

#[test]
fn long_audio_is_cut_into_30_second_windows() {
    let front_end = MelFrontEnd::whisper(80).unwrap();
    let seconds = |s: f64| test_signal((s * 16000.0) as usize);
    for (clip, windows) in [
        (seconds(11.0), 1),
        (seconds(30.0), 1),
        (seconds(30.5), 2),
        (seconds(61.0), 3),
    ] {
        let cut = front_end.windows(&clip, N_FRAMES).unwrap();
        assert_eq!(cut.len(), windows, "{} samples", clip.len());
        assert!(cut.iter().all(|w| w.shape == vec![80, N_FRAMES]));
    }
    // a window past the end of the audio is silence at the clamp floor
    let cut = front_end.windows(&seconds(11.0), N_FRAMES).unwrap();
    let last_frame: Vec<f32> = (0..80)
        .map(|m| cut[0].data[m * N_FRAMES + N_FRAMES - 1])
        .collect();
    let floor = last_frame[0];
    assert!(last_frame.iter().all(|&x| x == floor));
    assert!(front_end.windows(&[], N_FRAMES).is_err());
}

#[test]
fn npz_and_npy_errors_name_what_is_missing() {
    let path = bench_core::assets::asset_file("whisper-assets", "mel_filters.npz").unwrap();
    let error = format!("{:#}", read_npz_f32(&path, "mel_64").unwrap_err());
    assert!(
        error.contains("mel_64") && error.contains("mel_filters.npz"),
        "{error}"
    );
    assert!(parse_npy_f32(b"not an array").is_err());
    assert!(MelFrontEnd::whisper(64).is_err());
}
