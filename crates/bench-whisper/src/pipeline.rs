//! What both twins share above the model: the twin interface, greedy
//! decoding, and transcription of a clip window by window. Written once,
//! so that the twins differ only in their model code.

use anyhow::{ensure, Result};
use bench_core::host::HostTensor;

use crate::config::ModelDims;
use crate::mel::MelFrontEnd;
use crate::text::{SpecialTokens, WhisperTokenizer};

/// The decoder of one window, with its self-attention key/value cache.
pub trait DecoderSession {
    /// Feeds `tokens` (the prompt at first, then one token per step) and
    /// returns the raw logits of the last position, as float32 on the host.
    fn logits(&mut self, tokens: &[u32]) -> Result<HostTensor>;

    /// Feeds `tokens` and returns the arg-max token after the suppression
    /// mask (`first`: the first sampled token's mask), computed on the
    /// device; only the token id comes back to the host.
    fn next_token(&mut self, tokens: &[u32], first: bool) -> Result<u32>;
}

/// A Whisper model in one framework: `mlx::Whisper` or `torch::Whisper`.
pub trait WhisperTwin {
    /// The encoder's output, on the device.
    type Features;
    /// Every decoder layer's cross-attention keys and values of a window.
    type CrossKv;
    type Session<'a>: DecoderSession
    where
        Self: 'a;

    /// Encodes one window's log-mel, (n_mels, 2 * n_audio_ctx).
    fn encode(&self, mel: &HostTensor) -> Result<Self::Features>;

    fn features_to_host(&self, features: &Self::Features) -> Result<HostTensor>;

    /// Projects the encoder output to keys and values once per window.
    fn cross_kv(&self, features: &Self::Features) -> Result<Self::CrossKv>;

    /// A decoder with an empty cache, attending to `cross`.
    fn session<'a>(&'a self, cross: &'a Self::CrossKv) -> Self::Session<'a>;
}

/// Tokens sampled for one window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Text tokens, without the prompt and the end of text.
    pub tokens: Vec<u32>,
    /// Decoder forward passes: one per sampled token, the end included.
    pub steps: usize,
}

/// OpenAI's default sample length: half the text context (224 tokens for
/// every released Whisper), within what the context leaves after the prompt.
pub fn max_sampled_tokens(dims: &ModelDims, special: &SpecialTokens) -> usize {
    (dims.n_text_ctx / 2).min(dims.n_text_ctx - special.prompt.len())
}

/// Greedy decoding without timestamps: the arg-max token at each step,
/// until <|endoftext|> or `max_tokens` sampled tokens.
pub fn greedy_decode(
    session: &mut impl DecoderSession,
    special: &SpecialTokens,
    max_tokens: usize,
) -> Result<Decoded> {
    let mut tokens = Vec::new();
    let mut input = special.prompt.clone();
    for step in 0..max_tokens {
        let next = session.next_token(&input, step == 0)?;
        if next == special.end_of_text {
            return Ok(Decoded {
                tokens,
                steps: step + 1,
            });
        }
        tokens.push(next);
        input = vec![next];
    }
    Ok(Decoded {
        tokens,
        steps: max_tokens,
    })
}

/// A clip's transcription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript {
    pub text: String,
    pub tokens: Vec<u32>,
    pub windows: usize,
    pub decoder_steps: usize,
}

/// Everything a twin needs besides itself to transcribe.
pub struct Transcriber<'a> {
    pub dims: &'a ModelDims,
    pub front_end: &'a MelFrontEnd,
    pub tokenizer: &'a WhisperTokenizer,
}

impl Transcriber<'_> {
    /// The encoder inputs of a clip: 30-second windows of log-mel.
    pub fn windows(&self, samples: &[f32]) -> Result<Vec<HostTensor>> {
        ensure!(
            self.front_end.n_mels() == self.dims.n_mels,
            "the front end makes {} mel bands, the model takes {}",
            self.front_end.n_mels(),
            self.dims.n_mels
        );
        self.front_end.windows(samples, self.dims.input_frames())
    }

    /// 16 kHz samples to text: log-mel, then per window the encoder, the
    /// cross-attention keys/values and greedy decoding; the text of all
    /// windows' tokens at the end.
    pub fn transcribe<T: WhisperTwin>(&self, twin: &T, samples: &[f32]) -> Result<Transcript> {
        let special = &self.tokenizer.special;
        let max_tokens = max_sampled_tokens(self.dims, special);
        let windows = self.windows(samples)?;
        let mut tokens = Vec::new();
        let mut decoder_steps = 0;
        for mel in &windows {
            let features = twin.encode(mel)?;
            let cross = twin.cross_kv(&features)?;
            let decoded = greedy_decode(&mut twin.session(&cross), special, max_tokens)?;
            tokens.extend(decoded.tokens);
            decoder_steps += decoded.steps;
        }
        Ok(Transcript {
            text: self.tokenizer.decode(&tokens)?.trim().to_owned(),
            tokens,
            windows: windows.len(),
            decoder_steps,
        })
    }
}
