//! `cargo xtask setup` and `cargo xtask bundle`: the Debian packages, MLX,
//! libtorch and assets in `.cache/`, pinned and checked by sha256, and the
//! bundle for a machine without Rust or network.
//!
//! Modules, each using only those listed before it:
//! pins, requirements, cache, download, assets, setup, bundle, macos_check.

pub mod bundle;
pub mod download;
pub mod macos_check;
pub mod requirements;
pub mod setup;

mod assets;
mod cache;
mod pins;
