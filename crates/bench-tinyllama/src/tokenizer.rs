//! The Llama-2 sentencepiece tokenizer through the `tokenizers` crate.
//!
//! Online, the Hub's `tokenizer.json` is used as it is. Offline, the same
//! tokenizer is built from the registry copy of the Llama-2 vocabulary and
//! merges (npm `llama-tokenizer-js`, which embeds them base64-encoded), laid
//! out as Hugging Face's `LlamaTokenizerFast` lays out Llama-2's
//! tokenizer.json: a BPE model with byte fallback, a normalizer that
//! prepends "▁" and turns spaces into "▁", no pre-tokenizer, and a decoder
//! that undoes both.

use std::path::Path;

use anyhow::{anyhow, ensure, Context, Result};
use base64::Engine;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, Tokenizer};

/// The registry asset holding `llama-tokenizer.js`.
pub const TOKENIZER_ASSET: &str = "llama-tokenizer";
pub const TOKENIZER_JS: &str = "llama-tokenizer.js";

/// Sentencepiece's word-boundary mark.
const SPACE_MARK: &str = "\u{2581}";

/// Llama-2's control tokens, at ids 0, 1, 2.
const SPECIAL_TOKENS: [&str; 3] = ["<unk>", "<s>", "</s>"];

/// A tokenizer and where it came from.
pub struct LlamaTokenizer {
    tokenizer: Tokenizer,
    /// "hub:<repo>" or "asset:llama-tokenizer", for the result row.
    pub origin: String,
}

impl LlamaTokenizer {
    /// The Hub's tokenizer.json.
    pub fn from_tokenizer_json(path: &Path, origin: &str) -> Result<Self> {
        let tokenizer = Tokenizer::from_file(path)
            .map_err(|e| anyhow!("loading tokenizer {}: {e}", path.display()))?;
        Ok(Self {
            tokenizer,
            origin: origin.to_owned(),
        })
    }

    /// The registry copy of Llama-2's tokenizer (offline).
    pub fn offline() -> Result<Self> {
        let path = bench_core::assets::asset_file(TOKENIZER_ASSET, TOKENIZER_JS)?;
        Self::from_llama_tokenizer_js(&path)
    }

    /// Builds Llama-2's tokenizer from llama-tokenizer.js's vocabulary (one
    /// piece a line, the line number its id) and merges (pairs of
    /// little-endian u16 ids, highest priority first).
    pub fn from_llama_tokenizer_js(path: &Path) -> Result<Self> {
        let source =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let in_file = |what: &str| format!("{what} in {}", path.display());
        let vocab_bytes = decode_js_base64(&source, "llama_vocab_base64")
            .with_context(|| in_file("the vocabulary"))?;
        let merge_bytes = decode_js_base64(&source, "llama_merges_binary")
            .with_context(|| in_file("the merges"))?;
        let pieces: Vec<String> = String::from_utf8(vocab_bytes)
            .with_context(|| in_file("the vocabulary is not UTF-8"))?
            .split('\n')
            .map(str::to_owned)
            .collect();
        ensure!(
            pieces.len() >= SPECIAL_TOKENS.len() && pieces[..3] == SPECIAL_TOKENS,
            "{}: the vocabulary does not start with <unk>, <s>, </s>",
            path.display()
        );
        ensure!(
            merge_bytes.len() % 4 == 0,
            "{}: the merges are {} bytes, not whole pairs of u16 ids",
            path.display(),
            merge_bytes.len()
        );
        let piece = |bytes: &[u8]| {
            let id = u16::from_le_bytes([bytes[0], bytes[1]]) as usize;
            pieces.get(id).cloned().with_context(|| {
                format!(
                    "{}: merge names id {id}, past the vocabulary",
                    path.display()
                )
            })
        };
        let merges = merge_bytes
            .chunks_exact(4)
            .map(|pair| Ok((piece(&pair[..2])?, piece(&pair[2..])?)))
            .collect::<Result<Vec<_>>>()?;
        let vocab: Vocab = pieces
            .iter()
            .enumerate()
            .map(|(id, piece)| (piece.clone(), id as u32))
            .collect();
        ensure!(
            vocab.len() == pieces.len(),
            "{}: the vocabulary repeats a piece",
            path.display()
        );
        let tokenizer = sentencepiece_bpe(vocab, merges)?;
        Ok(Self {
            tokenizer,
            origin: format!("asset:{TOKENIZER_ASSET}"),
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Token ids of `text`; `add_bos` puts `<s>` first, as Llama's
    /// tokenizer does for a prompt.
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, add_bos)
            .map_err(|e| anyhow!("tokenizing {text:?}: {e}"))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`, control tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| anyhow!("decoding {} token ids: {e}", ids.len()))
    }

    /// The id of a piece, e.g. "</s>".
    pub fn token_id(&self, piece: &str) -> Option<u32> {
        self.tokenizer.token_to_id(piece)
    }
}

/// The base64 string literal `const <name> = "..."` of a JavaScript file.
fn decode_js_base64(source: &str, name: &str) -> Result<Vec<u8>> {
    let declaration = format!("const {name} = \"");
    let start = source
        .find(&declaration)
        .with_context(|| format!("no `const {name}` string"))?
        + declaration.len();
    let length = source[start..]
        .find('"')
        .with_context(|| format!("the string {name} is not closed"))?;
    base64::engine::general_purpose::STANDARD
        .decode(&source[start..start + length])
        .with_context(|| format!("{name} is not base64"))
}

/// Hugging Face's layout of a sentencepiece BPE model (Llama-2's
/// tokenizer.json), from its vocabulary and ranked merges.
fn sentencepiece_bpe(vocab: Vocab, merges: Vec<(String, String)>) -> Result<Tokenizer> {
    let model = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .unk_token(SPECIAL_TOKENS[0].to_owned())
        .fuse_unk(true)
        .byte_fallback(true)
        .build()
        .map_err(|e| anyhow!("building the BPE model: {e}"))?;
    let mut tokenizer = Tokenizer::new(model);
    let normalizer: NormalizerWrapper = NormalizerSequence::new(vec![
        Prepend::new(SPACE_MARK.to_owned()).into(),
        Replace::new(" ", SPACE_MARK)
            .map_err(|e| anyhow!("{e}"))?
            .into(),
    ])
    .into();
    let decoder: DecoderWrapper = DecoderSequence::new(vec![
        Replace::new(SPACE_MARK, " ")
            .map_err(|e| anyhow!("{e}"))?
            .into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
        // The space that the normalizer prepended.
        Strip::new(' ', 1, 0).into(),
    ])
    .into();
    let post_processor = TemplateProcessing::builder()
        .try_single("<s> $A")
        .map_err(|e| anyhow!("{e}"))?
        .try_pair("<s> $A <s>:1 $B:1")
        .map_err(|e| anyhow!("{e}"))?
        .special_tokens(vec![("<s>", 1)])
        .build()
        .map_err(|e| anyhow!("{e}"))?;
    tokenizer
        .with_normalizer(Some(normalizer))
        .map_err(|e| anyhow!("{e}"))?
        .with_decoder(Some(decoder))
        .with_post_processor(Some(post_processor));
    tokenizer
        .add_special_tokens(SPECIAL_TOKENS.map(|token| AddedToken::from(token, true)))
        .map_err(|e| anyhow!("adding the control tokens: {e}"))?;
    Ok(tokenizer)
}
