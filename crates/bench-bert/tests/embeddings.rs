//! The real MiniLM weights give sensible sentence embeddings (mean-pooled,
//! normalised, as all-MiniLM-L6-v2 was trained): a paraphrase is closer to
//! its sentence than an unrelated sentence is, in both twins.

mod common;

use bench_bert::workload::sentence_embeddings;
use bench_core::host::HostTensor;

/// (sentence, paraphrase, unrelated)
const TRIPLES: [[&str; 3]; 3] = [
    [
        "A man is playing a guitar.",
        "Someone plays an instrument.",
        "The stock market fell sharply today.",
    ],
    [
        "A cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "The recipe needs two cups of flour.",
    ],
    [
        "Win a free cruise, claim your prize now!",
        "Congratulations, you have won a holiday, act today.",
        "The meeting is moved to Thursday afternoon.",
    ],
];

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    // The embeddings are unit vectors.
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// For each triple, (similarity to the paraphrase, to the unrelated one).
fn similarities(hidden: &HostTensor, mask: &[i32]) -> Vec<(f32, f32)> {
    let embeddings = sentence_embeddings(hidden, mask).unwrap();
    for e in &embeddings {
        let norm = e.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "embedding norm {norm}");
    }
    embeddings
        .chunks_exact(3)
        .map(|t| (cosine(&t[0], &t[1]), cosine(&t[0], &t[2])))
        .collect()
}

#[test]
fn paraphrases_rank_above_unrelated_sentences() {
    let (config, weights) = common::minilm(0);
    let texts: Vec<String> = TRIPLES.iter().flatten().map(|s| s.to_string()).collect();
    let tokens = common::minilm_tokenizer(24).encode(&texts).unwrap();
    let (mut mlx_model, mut torch_model) = common::both_models(&config, &weights);
    for (twin, hidden) in [
        ("MLX", mlx_model.hidden_states(&tokens).unwrap()),
        ("PyTorch", torch_model.hidden_states(&tokens).unwrap()),
    ] {
        for (triple, (similar, unrelated)) in
            TRIPLES.iter().zip(similarities(&hidden, &tokens.mask))
        {
            println!(
                "{twin}: {:?}: paraphrase {similar:.3}, unrelated {unrelated:.3}",
                triple[0]
            );
            assert!(
                similar > unrelated + 0.2,
                "{twin}: '{}' is {similar:.3} to its paraphrase and {unrelated:.3} to '{}'",
                triple[0],
                triple[2]
            );
        }
    }
}
