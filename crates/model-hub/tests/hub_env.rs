//! The Hub client honours Hugging Face's environment: HF_HOME's cache is
//! read (no network needed for a cached file), HF_TOKEN is taken. Its own
//! process (an integration test), since it sets environment variables.

use model_hub::{env_token, resolve, ModelSource, Preference};

#[test]
fn hf_home_cache_and_hf_token_are_honoured() {
    let home = std::env::temp_dir().join(format!("hf-home-{}", std::process::id()));
    let repo = home.join("hub/models--someone--tiny-model");
    let snapshot = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    std::fs::write(snapshot.join("config.json"), "{}").unwrap();
    std::env::set_var("HF_HOME", &home);
    // A mirror that cannot answer: only the cache can give the file.
    std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");
    std::env::remove_var("HF_HUB_OFFLINE");

    let source = ModelSource {
        hub_repo: "someone/tiny-model".into(),
        offline_asset: None,
    };
    let found = resolve(&source, &["config.json"], Preference::HubOnly).unwrap();
    assert_eq!(
        found.path("config.json").unwrap(),
        &snapshot.join("config.json")
    );
    assert_eq!(found.origin, "hub:someone/tiny-model");
    // A file not in the cache goes to HF_ENDPOINT, which fails.
    let error = resolve(&source, &["model.safetensors"], Preference::HubOnly).unwrap_err();
    assert!(
        format!("{error:#}").contains("model.safetensors"),
        "{error:#}"
    );

    std::env::set_var("HF_TOKEN", " hf_abc \n");
    assert_eq!(env_token().as_deref(), Some("hf_abc"));
    std::env::set_var("HF_TOKEN", "");
    assert_eq!(env_token(), None);
    std::fs::remove_dir_all(&home).unwrap();
}
