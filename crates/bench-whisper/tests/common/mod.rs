//! Shared by the test binaries: the offline tiny.en model, loaded once per
//! binary, the JFK clip, and scratch folders.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use bench_whisper::audio::{read_wav, Audio};
use bench_whisper::mel::MelFrontEnd;
use bench_whisper::pipeline::{Transcriber, WhisperTwin};
use bench_whisper::source::{self, SourcePreference, WhisperModel};
use bench_whisper::text::normalize;

/// What tiny.en says in the JFK clip (punctuation varies between decoders).
pub const JFK_WORDS: &str = "and so my fellow americans ask not what your country can do for you ask what you can do for your country";

/// tiny.en from the registry's CTranslate2 copy: tests do not depend on
/// the network.
pub fn tiny_en() -> &'static WhisperModel {
    static MODEL: OnceLock<WhisperModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        source::load(source::DEFAULT_MODEL, SourcePreference::Offline, "en")
            .expect("the whisper-tiny-en-ct2 asset (cargo xtask setup)")
    })
}

pub fn jfk() -> Audio {
    read_wav(&bench_core::assets::asset_file("jfk", "jfk.wav").expect("the jfk asset"))
        .expect("jfk.wav")
}

/// An empty folder of its own under the system's temporary folder.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bench-whisper-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch folder");
    dir
}

/// tiny.en's transcriber (its front end made once per binary).
pub fn tiny_en_transcriber() -> Transcriber<'static> {
    static FRONT_END: OnceLock<MelFrontEnd> = OnceLock::new();
    let model = tiny_en();
    Transcriber {
        dims: &model.dims,
        front_end: FRONT_END.get_or_init(|| MelFrontEnd::whisper(model.dims.n_mels).unwrap()),
        tokenizer: &model.tokenizer,
    }
}

/// The twin transcribes the JFK clip word for word, in one window.
pub fn check_transcript<T: WhisperTwin>(name: &str, twin: &T) {
    let transcript = tiny_en_transcriber()
        .transcribe(twin, &jfk().samples)
        .unwrap();
    assert_eq!(transcript.windows, 1, "11 s of audio is one window");
    assert_eq!(
        normalize(&transcript.text),
        JFK_WORDS,
        "{name} transcribed: {}",
        transcript.text
    );
    // the end of text is a decoder step but not a token
    assert_eq!(transcript.decoder_steps, transcript.tokens.len() + 1);
}

/// The twin transcribes the clip, silence up to the 30 s mark, and the
/// clip again window by window: two windows, each holding one full
/// sentence, each window's decoder a session of its own.
pub fn check_two_window_transcript<T: WhisperTwin>(name: &str, twin: &T) {
    let clip = jfk().samples;
    let mut long = clip.clone();
    long.resize(30 * 16000, 0.0);
    long.extend_from_slice(&clip);
    let transcript = tiny_en_transcriber().transcribe(twin, &long).unwrap();
    assert_eq!(transcript.windows, 2);
    assert_eq!(
        normalize(&transcript.text),
        format!("{JFK_WORDS} {JFK_WORDS}"),
        "{name} transcribed: {}",
        transcript.text
    );
    assert_eq!(transcript.decoder_steps, transcript.tokens.len() + 2);
}
