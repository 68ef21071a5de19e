//! Pinned downloads in `.cache/downloads` (pip or npm, checked by sha256)
//! and unpacking a wheel.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use sha2::{Digest, Sha256};

use crate::pins::{Pinned, Registry};

/// The package file in `.cache/downloads`, fetched if absent or corrupt.
pub fn fetch(cache: &Path, package: &Pinned) -> Result<PathBuf> {
    let dir = cache.join("downloads");
    fs::create_dir_all(&dir)?;
    let path = dir.join(&package.file);
    if path.exists() {
        match verify_sha256(&path, &package.sha256) {
            Ok(()) => return Ok(path),
            Err(problem) => {
                eprintln!("set-up: {problem:#}; downloading it again");
                fs::remove_file(&path)?;
            }
        }
    }
    match package.registry {
        Registry::Pypi => {
            eprintln!("set-up: downloading {} from PyPI", package.requirement);
            pip_download(package, &dir, false)?;
        }
        Registry::Npm => {
            eprintln!("set-up: downloading {} from npm", package.requirement);
            npm_pack(package, &dir)?;
        }
    }
    ensure!(
        path.exists(),
        "fetching {} did not produce {} (is the pin still on its registry?)",
        package.requirement,
        path.display()
    );
    verify_sha256(&path, &package.sha256).inspect_err(|_| {
        let _ = fs::remove_file(&path);
    })?;
    Ok(path)
}

pub fn pip_download(package: &Pinned, dir: &Path, with_dependencies: bool) -> Result<()> {
    let mut command = Command::new("python3");
    command.args(["-m", "pip", "download", "--disable-pip-version-check"]);
    if package.file.ends_with(".whl") {
        command.arg("--only-binary=:all:");
    } else {
        command.arg("--no-binary=:all:");
    }
    if !package.platforms.is_empty() {
        // The wheel's own CPython tag (cp311, cp312, ...), so that any local
        // Python fetches the pinned file.
        let abi = package
            .file
            .split('-')
            .find(|part| part.starts_with("cp3"))
            .unwrap_or("cp311");
        let version = format!("3.{}", &abi[3..]);
        command.args([
            "--python-version",
            &version,
            "--implementation",
            "cp",
            "--abi",
            abi,
            "--abi",
            "none",
        ]);
        for platform in package.platforms {
            command.args(["--platform", platform]);
        }
    }
    if !with_dependencies {
        command.arg("--no-deps");
    }
    command.arg("-d").arg(dir).arg(&package.requirement);
    let status = command
        .status()
        .context("running `python3 -m pip download` (set-up needs Python 3 with pip to fetch packages from PyPI)")?;
    ensure!(
        status.success(),
        "pip download {} failed ({status})",
        package.requirement
    );
    Ok(())
}

fn npm_pack(package: &Pinned, dir: &Path) -> Result<()> {
    let status = Command::new("npm")
        .args(["pack", "--silent", &package.requirement, "--pack-destination"])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .status()
        .context("running `npm pack` (set-up needs Node.js with npm to fetch packages from the npm registry)")?;
    ensure!(
        status.success(),
        "npm pack {} failed ({status})",
        package.requirement
    );
    Ok(())
}

pub fn sha256_of(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

pub fn verify_sha256(path: &Path, expected: &str) -> Result<()> {
    let actual = sha256_of(path)?;
    ensure!(
        actual == expected,
        "broken cache: {} has sha256 {actual}, but the pinned sha256 is {expected}",
        path.display()
    );
    Ok(())
}

/// Extracts the entries of a wheel (a zip) that `place` maps to a path
/// under `dest`; returns how many it extracted.
pub fn unzip(
    archive: &Path,
    dest: &Path,
    mut place: impl FnMut(&str) -> Option<PathBuf>,
) -> Result<usize> {
    let file = File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file))
        .with_context(|| format!("{} is not a valid wheel (zip)", archive.display()))?;
    let mut count = 0;
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index)?;
        let Some(name) = entry.enclosed_name().map(Path::to_path_buf) else {
            continue;
        };
        let Some(relative) = place(&name.to_string_lossy()).filter(|_| !entry.is_dir()) else {
            continue;
        };
        let target = dest.join(relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut out =
            File::create(&target).with_context(|| format!("creating {}", target.display()))?;
        io::copy(&mut entry, &mut out)
            .with_context(|| format!("extracting {} from {}", name.display(), archive.display()))?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_download_is_named_with_both_hashes() {
        let dir = std::env::temp_dir().join(format!("xtask-sha-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.whl");
        fs::write(&path, b"not a wheel").unwrap();
        let error = verify_sha256(&path, "00").unwrap_err().to_string();
        assert!(error.contains("x.whl"), "{error}");
        assert!(error.contains(&sha256_of(&path).unwrap()), "{error}");
        assert!(error.contains("pinned sha256 is 00"), "{error}");
        fs::remove_dir_all(dir).unwrap();
    }
}
