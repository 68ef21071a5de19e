//! Where the registry copies of models and data (`data/assets.toml`) are.

use std::path::PathBuf;

use anyhow::{ensure, Result};

/// The environment variable naming the assets folder; `.cargo/config.toml`
/// sets it for cargo's commands, and bundles set it themselves.
pub const ASSETS_VAR: &str = "MLX_VS_TORCH_ASSETS";

/// The folder of one asset, e.g. `asset_dir("minilm")`, or a clear error
/// naming what is missing and how to get it.
pub fn asset_dir(name: &str) -> Result<PathBuf> {
    let root = std::env::var_os(ASSETS_VAR)
        .map(PathBuf::from)
        .or_else(|| option_env!("MLX_VS_TORCH_ASSETS").map(PathBuf::from));
    let Some(root) = root else {
        anyhow::bail!("{ASSETS_VAR} is not set: run through cargo (see .cargo/config.toml) or set it to the assets folder");
    };
    let dir = root.join(name);
    ensure!(
        dir.is_dir(),
        "asset '{name}' is missing at {}: run `cargo xtask setup` (it fetches data/assets.toml)",
        dir.display()
    );
    Ok(dir)
}

/// A file inside an asset, checked to exist.
pub fn asset_file(name: &str, file: &str) -> Result<PathBuf> {
    let path = asset_dir(name)?.join(file);
    ensure!(
        path.is_file(),
        "asset '{name}' has no {file} (looked at {})",
        path.display()
    );
    Ok(path)
}
