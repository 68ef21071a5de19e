//! What both twins share above the model: the twin interface, greedy
//! decoding, and transcription of a clip window by window. Written once,
//! so that the twins differ only in their model code.

use anyhow::{ensure, Result};
use bench_core::host::HostTensor;

use crate::config::ModelDims;
use crate::mel::MelFrontEnd;
use crate::text::{SpecialTokens, WhisperTokenizer};

/// The decoder of one window, with its self-attention key/value cache.
///
/// Greedy sampling is split so that decoding can run ahead of the host, as
/// mlx-whisper's `async_eval` loop does: `start` and `follow` queue a step
/// whose token (the arg-max after the suppression mask) stays on the
/// device; `read` waits for one and brings its id to the host.
pub trait DecoderSession {
    /// A sampled token still on the device.
    type Pending;

    /// Feeds `tokens` (the prompt at first, then one token per step) and
    /// returns the raw logits of the last position, as float32 on the host.
    fn logits(&mut self, tokens: &[u32]) -> Result<HostTensor>;

    /// Feeds the prompt; queues the first sampled token (its own mask).
    fn start(&mut self, prompt: &[u32]) -> Result<Self::Pending>;

    /// Feeds a token still on the device; queues the next one.
    fn follow(&mut self, previous: &Self::Pending) -> Result<Self::Pending>;

    /// Waits for a queued token and returns its id.
    fn read(&mut self, token: &Self::Pending) -> Result<u32>;
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

    /// How decoding ran, for the row's `execution=`.
    fn execution(&self) -> &'static str;
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
///
/// Each step is queued before the previous token is read, so the device
/// never waits for the host (mlx-whisper's loop). The step queued after
/// <|endoftext|> is wasted, as there; `steps` counts the steps whose token
/// was used.
pub fn greedy_decode<S: DecoderSession>(
    session: &mut S,
    special: &SpecialTokens,
    max_tokens: usize,
) -> Result<Decoded> {
    let mut tokens = Vec::new();
    let mut pending = session.start(&special.prompt)?;
    for step in 0..max_tokens {
        let next = if step + 1 < max_tokens {
            Some(session.follow(&pending)?)
        } else {
            None
        };
        let token = session.read(&pending)?;
        if token == special.end_of_text {
            return Ok(Decoded {
                tokens,
                steps: step + 1,
            });
        }
        tokens.push(token);
        match next {
            Some(next) => pending = next,
            None => break,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoder that samples a fixed script of tokens and counts its steps.
    struct Scripted {
        script: Vec<u32>,
        queued: usize,
    }

    impl DecoderSession for Scripted {
        type Pending = usize;

        fn logits(&mut self, _: &[u32]) -> Result<HostTensor> {
            unreachable!("greedy decoding reads tokens, not logits")
        }

        fn start(&mut self, _: &[u32]) -> Result<usize> {
            self.queued = 1;
            Ok(0)
        }

        fn follow(&mut self, previous: &usize) -> Result<usize> {
            self.queued += 1;
            Ok(previous + 1)
        }

        fn read(&mut self, step: &usize) -> Result<u32> {
            Ok(self.script[*step])
        }
    }

    fn special() -> SpecialTokens {
        SpecialTokens {
            prompt: vec![50257, 50362],
            end_of_text: 50256,
        }
    }

    #[test]
    fn runs_one_step_ahead_and_stops_at_the_end_of_text() {
        let mut session = Scripted {
            script: vec![7, 8, 50256, 9, 9],
            queued: 0,
        };
        let decoded = greedy_decode(&mut session, &special(), 10).unwrap();
        assert_eq!(decoded.tokens, vec![7, 8]);
        assert_eq!(decoded.steps, 3);
        // The step after the end of text was queued before it was read.
        assert_eq!(session.queued, 4);
    }

    #[test]
    fn never_queues_more_than_max_tokens() {
        let mut session = Scripted {
            script: vec![5; 8],
            queued: 0,
        };
        let decoded = greedy_decode(&mut session, &special(), 3).unwrap();
        assert_eq!(decoded.tokens, vec![5, 5, 5]);
        assert_eq!((decoded.steps, session.queued), (3, 3));
    }
}
