//! The declared knobs: the parsing reads only them, bad values get clear
//! errors (never panic text), a mistyped key names the one meant.

use bench_core::Cell;

bench_core::knob_tests! {
    benchmark: bench_twin::Runner::<bench_bert::Bert>::new(),
    parse: |cell| bench_bert::FineTuneConfig::for_cell(cell).map(drop),
    typo: ("seqlen", "seq_len"),
    bad: ("batch_size", "-1", "out of range"),
}

/// The offline MiniLM copy, given as a local folder, is the model.
#[test]
fn a_local_model_folder_is_read_from_there() {
    let folder = bench_core::assets::asset_dir("minilm").unwrap();
    let options = [
        ("model", folder.display().to_string()),
        ("train_emails", "16".into()),
        ("test_emails", "8".into()),
    ];
    let cell = Cell {
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        knobs: &bench_bert::workload::KNOBS,
        ..Cell::for_checks()
    };
    let config = bench_bert::FineTuneConfig::for_cell(&cell).unwrap();
    let prepared = bench_bert::Prepared::load(&config, 0).unwrap();
    assert_eq!(prepared.origin, format!("dir:{}", folder.display()));
    assert_eq!(prepared.bert.num_hidden_layers, 6);
    let partial = std::env::temp_dir().join(format!("bert-partial-{}", std::process::id()));
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::copy(folder.join("config.json"), partial.join("config.json")).unwrap();
    let config = bench_bert::FineTuneConfig {
        model: partial.display().to_string(),
        ..config
    };
    let error = format!(
        "{:#}",
        bench_bert::Prepared::load(&config, 0).err().unwrap()
    );
    assert!(
        error.contains("has no model.safetensors, tokenizer.json"),
        "{error}"
    );
    std::fs::remove_dir_all(&partial).unwrap();
}
