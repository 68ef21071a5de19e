//! Both checkpoint formats load into the same typed weights: the
//! registry's CTranslate2 model.bin (read by our reader) and a Hugging Face
//! folder (written here under Hugging Face's own names). Damaged files,
//! missing, mis-shaped and unknown tensors are clear errors.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use bench_core::host::HostTensor;
use bench_whisper::config::ModelDims;
use bench_whisper::ct2::Ct2Model;
use bench_whisper::source::load_folder;
use bench_whisper::weights::{sinusoids, LinearWeights};
use common::{scratch_dir, tiny_en};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

fn model_bin() -> std::path::PathBuf {
    bench_core::assets::asset_file("whisper-tiny-en-ct2", "model.bin").unwrap()
}

#[test]
fn ct2_tiny_en_reads_with_its_dimensions_and_rules() {
    let model = tiny_en();
    // OpenAI's published dimensions of tiny.en, read from the CT2 tensors.
    assert_eq!(model.dims, ModelDims::TINY_EN);
    assert_eq!(model.format, "ctranslate2");
    assert_eq!(model.origin, "asset:whisper-tiny-en-ct2");
    // <|startoftranscript|> <|notimestamps|>, and <|endoftext|>
    assert_eq!(model.tokenizer.special.prompt, vec![50257, 50362]);
    assert_eq!(model.tokenizer.special.end_of_text, 50256);
    // suppress_blank (a space, the end) only at the first step; the
    // special and timestamp tokens always; a few non-speech tokens always
    let masks = &model.masks;
    for id in [220, 50256] {
        assert_eq!(masks.first[id], f32::NEG_INFINITY);
        assert_eq!(masks.rest[id], 0.0);
    }
    for id in [50257, 50362, 50363, 51863, 1, 90] {
        assert_eq!(masks.first[id], f32::NEG_INFINITY);
        assert_eq!(masks.rest[id], f32::NEG_INFINITY);
    }
    assert_eq!(masks.rest[400], 0.0);

    // the stored encoder positions are Whisper's sinusoids (float16)
    let positions = &model.weights.encoder.positions;
    let diff = positions.max_abs_diff(&sinusoids(1500, 384)).unwrap();
    assert!(
        diff < 1e-3,
        "encoder positions differ from sinusoids by {diff}"
    );
}

#[test]
fn truncated_or_foreign_model_bin_is_a_clear_error() {
    let dir = scratch_dir("ct2");
    let bytes = std::fs::read(model_bin()).unwrap();
    for (name, cut) in [("cut-in-tensor.bin", 5_000_000), ("cut-in-header.bin", 3)] {
        let path = dir.join(name);
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let error = format!("{:#}", Ct2Model::read(&path).unwrap_err());
        assert!(
            error.contains(name) && error.contains("truncated"),
            "{error}"
        );
    }
    let foreign = dir.join("foreign.bin");
    std::fs::write(&foreign, b"GGUF\x03\x00\x00\x00 and more").unwrap();
    let error = format!("{:#}", Ct2Model::read(&foreign).unwrap_err());
    assert!(
        error.contains("foreign.bin") && error.contains("version"),
        "{error}"
    );
}

/// Float32 tensors into a safetensors file.
fn write_safetensors<'a>(path: &Path, tensors: impl Iterator<Item = (&'a String, &'a HostTensor)>) {
    let tensors: Vec<_> = tensors.collect();
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, t)| t.data.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors.iter().zip(&bytes).map(|((name, t), bytes)| {
        let view = TensorView::new(Dtype::F32, t.shape.clone(), bytes).unwrap();
        (name.as_str(), view)
    });
    safetensors::tensor::serialize_to_file(views, None, path).unwrap();
}

/// A small Whisper, written as a Hugging Face folder under Hugging Face's
/// names; returns the tensors by those names.
fn write_hf_folder(dir: &Path, dims: &ModelDims) -> BTreeMap<String, HostTensor> {
    let (s, m) = (dims.n_audio_state, dims.n_mels);
    let mut tensors = BTreeMap::new();
    let mut add = |name: String, shape: Vec<usize>| {
        let seed = tensors.len() as u64;
        tensors.insert(name, HostTensor::uniform(shape, seed));
    };
    let attention = |add: &mut dyn FnMut(String, Vec<usize>), prefix: String| {
        for projection in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            add(format!("{prefix}.{projection}.weight"), vec![s, s]);
            if projection != "k_proj" {
                add(format!("{prefix}.{projection}.bias"), vec![s]);
            }
        }
    };
    let norm = |add: &mut dyn FnMut(String, Vec<usize>), prefix: String| {
        add(format!("{prefix}.weight"), vec![s]);
        add(format!("{prefix}.bias"), vec![s]);
    };
    let mlp = |add: &mut dyn FnMut(String, Vec<usize>), prefix: &str| {
        add(format!("{prefix}.fc1.weight"), vec![4 * s, s]);
        add(format!("{prefix}.fc1.bias"), vec![4 * s]);
        add(format!("{prefix}.fc2.weight"), vec![s, 4 * s]);
        add(format!("{prefix}.fc2.bias"), vec![s]);
    };
    add("model.encoder.conv1.weight".into(), vec![s, m, 3]);
    add("model.encoder.conv1.bias".into(), vec![s]);
    add("model.encoder.conv2.weight".into(), vec![s, s, 3]);
    add("model.encoder.conv2.bias".into(), vec![s]);
    add(
        "model.encoder.embed_positions.weight".into(),
        vec![dims.n_audio_ctx, s],
    );
    for i in 0..dims.n_audio_layer {
        let layer = format!("model.encoder.layers.{i}");
        attention(&mut add, format!("{layer}.self_attn"));
        norm(&mut add, format!("{layer}.self_attn_layer_norm"));
        norm(&mut add, format!("{layer}.final_layer_norm"));
        mlp(&mut add, &layer);
    }
    norm(&mut add, "model.encoder.layer_norm".into());
    add(
        "model.decoder.embed_tokens.weight".into(),
        vec![dims.n_vocab, s],
    );
    add(
        "model.decoder.embed_positions.weight".into(),
        vec![dims.n_text_ctx, s],
    );
    for i in 0..dims.n_text_layer {
        let layer = format!("model.decoder.layers.{i}");
        attention(&mut add, format!("{layer}.self_attn"));
        norm(&mut add, format!("{layer}.self_attn_layer_norm"));
        attention(&mut add, format!("{layer}.encoder_attn"));
        norm(&mut add, format!("{layer}.encoder_attn_layer_norm"));
        norm(&mut add, format!("{layer}.final_layer_norm"));
        mlp(&mut add, &layer);
    }
    norm(&mut add, "model.decoder.layer_norm".into());
    // some exports store the tied output projection too; it is not read
    add("proj_out.weight".into(), vec![dims.n_vocab, s]);

    write_safetensors(&dir.join("model.safetensors"), tensors.iter());
    let config = serde_json::json!({
        "model_type": "whisper",
        "d_model": s,
        "num_mel_bins": m,
        "max_source_positions": dims.n_audio_ctx,
        "encoder_attention_heads": dims.n_audio_head,
        "encoder_layers": dims.n_audio_layer,
        "vocab_size": dims.n_vocab,
        "max_target_positions": dims.n_text_ctx,
        "decoder_attention_heads": dims.n_text_head,
        "decoder_layers": dims.n_text_layer,
        "suppress_tokens": [1, 2, 7],
        "begin_suppress_tokens": [220, 50256],
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let tokenizer =
        bench_core::assets::asset_file("whisper-tiny-en-ct2", "tokenizer.json").unwrap();
    std::fs::copy(tokenizer, dir.join("tokenizer.json")).unwrap();
    tensors
}

fn bias(linear: &LinearWeights) -> &HostTensor {
    linear.bias.as_ref().expect("a bias")
}

#[test]
fn hugging_face_folder_maps_every_tensor_to_its_weight() {
    let dims = ModelDims {
        n_mels: 8,
        n_audio_ctx: 6,
        n_audio_state: 8,
        n_audio_head: 2,
        n_audio_layer: 2,
        // the tokenizer's special tokens must fit the vocabulary
        n_vocab: 51864,
        n_text_ctx: 10,
        n_text_state: 8,
        n_text_head: 2,
        n_text_layer: 1,
    };
    let dir = scratch_dir("hf");
    let written = write_hf_folder(&dir, &dims);
    let model = load_folder(&dir, "en").unwrap();
    assert_eq!(model.dims, dims);
    assert_eq!(model.format, "safetensors");
    // the typed fields against Hugging Face's names, spelled out
    // independently of the loader
    let (encoder, decoder) = (&model.weights.encoder, &model.weights.decoder);
    let (cross_ln, cross_attn) = decoder.blocks[0].cross_attn.as_ref().unwrap();
    let pairs: [(&HostTensor, &str); 15] = [
        (&encoder.conv2.weight, "model.encoder.conv2.weight"),
        (&encoder.positions, "model.encoder.embed_positions.weight"),
        (
            &encoder.blocks[1].attn.key.weight,
            "model.encoder.layers.1.self_attn.k_proj.weight",
        ),
        (
            bias(&encoder.blocks[0].attn.out),
            "model.encoder.layers.0.self_attn.out_proj.bias",
        ),
        (
            &encoder.blocks[1].attn_ln.weight,
            "model.encoder.layers.1.self_attn_layer_norm.weight",
        ),
        (
            &encoder.blocks[0].mlp_ln.bias,
            "model.encoder.layers.0.final_layer_norm.bias",
        ),
        (
            &encoder.blocks[1].mlp1.weight,
            "model.encoder.layers.1.fc1.weight",
        ),
        (&encoder.ln_post.weight, "model.encoder.layer_norm.weight"),
        (
            &decoder.token_embedding,
            "model.decoder.embed_tokens.weight",
        ),
        (&decoder.positions, "model.decoder.embed_positions.weight"),
        (
            bias(&decoder.blocks[0].attn.query),
            "model.decoder.layers.0.self_attn.q_proj.bias",
        ),
        (
            &cross_attn.value.weight,
            "model.decoder.layers.0.encoder_attn.v_proj.weight",
        ),
        (
            &cross_ln.bias,
            "model.decoder.layers.0.encoder_attn_layer_norm.bias",
        ),
        (
            bias(&decoder.blocks[0].mlp2),
            "model.decoder.layers.0.fc2.bias",
        ),
        (&decoder.ln.weight, "model.decoder.layer_norm.weight"),
    ];
    for (ours, theirs) in pairs {
        assert_eq!(ours, &written[theirs], "<- {theirs}");
    }
    // keys have no bias; only decoder blocks attend to the audio
    let blocks = encoder.blocks.iter().chain(&decoder.blocks);
    assert!(blocks.clone().all(|block| block.attn.key.bias.is_none()));
    assert!(encoder
        .blocks
        .iter()
        .all(|block| block.cross_attn.is_none()));
    assert_eq!(blocks.count(), 3);
    assert_eq!(model.masks.first[220], f32::NEG_INFINITY);
    assert_eq!(model.masks.rest[7], f32::NEG_INFINITY);
    assert_eq!(model.masks.rest[220], 0.0);

    // a missing tensor is named, in Hugging Face's terms (without the
    // `model.` prefix, which is optional), with the shape it should have
    let missing = "model.encoder.layers.1.fc2.bias";
    write_safetensors(
        &dir.join("model.safetensors"),
        written.iter().filter(|(name, _)| name.as_str() != missing),
    );
    let error = format!("{:#}", load_folder(&dir, "en").err().unwrap());
    assert!(
        error.contains("tensor encoder.layers.1.fc2.bias is missing (expected shape [8])")
            && error.contains("model.safetensors"),
        "{error}"
    );
}

#[test]
fn a_mis_shaped_or_unknown_tensor_in_safetensors_is_named() {
    let dims = ModelDims {
        n_mels: 4,
        n_audio_ctx: 3,
        n_audio_state: 8,
        n_audio_head: 2,
        n_audio_layer: 1,
        n_vocab: 51864,
        n_text_ctx: 5,
        n_text_state: 8,
        n_text_head: 2,
        n_text_layer: 1,
    };
    let dir = scratch_dir("hf-shapes");
    let mut written = write_hf_folder(&dir, &dims);
    load_folder(&dir, "en").unwrap();

    // fc1 stored the other way round: its name and both shapes
    let fc1 = "model.decoder.layers.0.fc1.weight";
    written.insert(fc1.into(), HostTensor::uniform(vec![8, 32], 1));
    write_safetensors(&dir.join("model.safetensors"), written.iter());
    // plain Display, with no context line hiding the problem
    let error = load_folder(&dir, "en").err().unwrap().to_string();
    assert!(
        error.contains(&format!("tensor {fc1} has shape [8, 32], expected [32, 8]"))
            && error.contains("model.safetensors"),
        "{error}"
    );

    // a tensor the model does not have is not silently dropped
    written.insert(fc1.into(), HostTensor::uniform(vec![32, 8], 1));
    let extra = "model.decoder.layers.0.adapter.weight";
    written.insert(extra.into(), HostTensor::uniform(vec![2], 2));
    write_safetensors(&dir.join("model.safetensors"), written.iter());
    let error = format!("{:#}", load_folder(&dir, "en").err().unwrap());
    assert!(
        error.contains(&format!("tensor {extra} [2] is not used by the model")),
        "{error}"
    );
}

#[test]
fn a_local_folder_missing_files_is_named_and_a_mistyped_one_is_not_sent_to_the_hub() {
    let dir = std::env::temp_dir().join(format!("whisper-partial-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.safetensors"), b"").unwrap();
    let error = format!("{:#}", load_folder(&dir, "en").err().unwrap());
    assert!(
        error.contains("has no config.json, tokenizer.json"),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let options = bench_whisper::source::SourcePreference::Auto;
    let error = bench_whisper::source::load("./no-such-whisper", options, "en")
        .err()
        .unwrap();
    assert!(
        format!("{error:#}").contains("./no-such-whisper does not exist"),
        "{error:#}"
    );
}
