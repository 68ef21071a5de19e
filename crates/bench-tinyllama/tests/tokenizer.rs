//! The offline Llama-2 tokenizer matches llama.cpp's reference tokenizations
//! (`ggml-vocab-llama-spm.gguf.inp` / `.out`, made with the original
//! sentencepiece tokenizer) case for case.

use bench_core::assets::asset_file;
use bench_tinyllama::tokenizer::LlamaTokenizer;

/// The cases as llama.cpp's tests/test-tokenizer-0.cpp reads them: inputs
/// separated by "\n__ggml_vocab_test__\n" (the file ends with one), outputs
/// one line each of space-separated ids; tokenized without BOS.
fn reference_cases() -> Vec<(String, Vec<u32>)> {
    let inputs = std::fs::read_to_string(
        asset_file("llama-vocab-tests", "ggml-vocab-llama-spm.gguf.inp").unwrap(),
    )
    .unwrap();
    let outputs = std::fs::read_to_string(
        asset_file("llama-vocab-tests", "ggml-vocab-llama-spm.gguf.out").unwrap(),
    )
    .unwrap();
    let separator = "\n__ggml_vocab_test__\n";
    let mut texts = Vec::new();
    let mut rest = inputs.as_str();
    while !rest.is_empty() {
        match rest.find(separator) {
            Some(end) => {
                texts.push(rest[..end].to_owned());
                rest = &rest[end + separator.len()..];
            }
            None => {
                texts.push(rest.to_owned());
                rest = "";
            }
        }
    }
    let ids: Vec<Vec<u32>> = outputs
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(|id| id.parse().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(texts.len(), ids.len(), "inputs and outputs pair up");
    texts.into_iter().zip(ids).collect()
}

#[test]
fn every_llama_cpp_reference_case_matches() {
    let tokenizer = LlamaTokenizer::offline().unwrap();
    assert_eq!(tokenizer.vocab_size(), 32_000);
    let cases = reference_cases();
    // The files hold 46 cases (a naive split of the input file on the
    // separator yields a 47th, empty, piece after the final separator).
    assert_eq!(cases.len(), 46);
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(text, expected)| {
            let got = tokenizer.encode(text, false).unwrap();
            (&got != expected).then(|| format!("{text:?}: expected {expected:?}, got {got:?}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn decoding_gives_back_every_reference_text() {
    let tokenizer = LlamaTokenizer::offline().unwrap();
    for (text, ids) in reference_cases() {
        assert_eq!(tokenizer.decode(&ids).unwrap(), text, "ids {ids:?}");
    }
}

#[test]
fn a_prompt_starts_with_bos() {
    let tokenizer = LlamaTokenizer::offline().unwrap();
    let ids = tokenizer.encode("Hello world!", true).unwrap();
    assert_eq!(ids, [1, 15043, 3186, 29991]);
    assert_eq!(tokenizer.decode(&ids).unwrap(), "Hello world!");
    assert_eq!(tokenizer.token_id("</s>"), Some(2));
}

#[test]
fn a_file_without_the_vocabulary_is_named_in_the_error() {
    let path = std::env::temp_dir().join(format!("not-a-tokenizer-{}.js", std::process::id()));
    std::fs::write(&path, "const llama_merges_binary = \"AAAA\";\n").unwrap();
    let error = LlamaTokenizer::from_llama_tokenizer_js(&path)
        .err()
        .expect("no vocabulary");
    let message = format!("{error:#}");
    std::fs::remove_file(&path).unwrap();
    assert!(message.contains("llama_vocab_base64"), "{message}");
    assert!(message.contains("not-a-tokenizer"), "{message}");
}
