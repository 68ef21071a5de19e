//! The set-up cache's folders (MLX, libtorch, each asset): a folder counts
//! as finished when its stamp (`.setup-complete`) matches and every file
//! the stamp lists still has the size it had when set-up wrote it. A
//! truncated library or a half-unpacked asset is named and rebuilt.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub const STAMP: &str = ".setup-complete";

/// Whether the stamp's first line is `stamp` (what was built; the lines
/// after it list the files' sizes, see `stamp_text`).
pub fn finished(dir: &Path, stamp: &str) -> bool {
    fs::read_to_string(dir.join(STAMP))
        .is_ok_and(|text| text.lines().next().unwrap_or_default().trim() == stamp.trim())
}

pub fn mark_finished(dir: &Path, stamp: &str) -> Result<()> {
    let path = dir.join(STAMP);
    fs::write(&path, stamp_text(dir, stamp)?)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("set-up: {} is ready", dir.display());
    Ok(())
}

/// Fills a fresh staging folder and swaps it in, so an interrupted set-up
/// never leaves a half-filled folder that looks finished.
pub fn rebuild_dir(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let staging = dir.with_extension("partial");
    remove_dir(&staging)?;
    fs::create_dir_all(&staging)?;
    fill(&staging)?;
    remove_dir(dir)?;
    fs::rename(&staging, dir)
        .with_context(|| format!("moving {} to {}", staging.display(), dir.display()))
}

fn remove_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// What `ensure_dir` found.
#[derive(Debug, PartialEq)]
pub enum Ensured {
    /// Finished and intact: left alone.
    Kept,
    /// Built now; with the reason when a broken one was replaced.
    Built(Option<String>),
}

/// Makes `dir` a finished, intact build: kept when its stamp is `stamp`,
/// its files are whole and `check` passes; otherwise `fill` builds it anew
/// in a staging folder that replaces it, `check` checks it and it is
/// stamped with its files' sizes.
pub fn ensure_dir(
    dir: &Path,
    stamp: &str,
    check: impl Fn(&Path) -> Result<()>,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<Ensured> {
    let broken = if finished(dir, stamp) {
        match check_files(dir).and_then(|()| check(dir)) {
            Ok(()) => return Ok(Ensured::Kept),
            Err(problem) => {
                let problem = format!("{problem:#}");
                eprintln!("set-up: {problem}; rebuilding {}", dir.display());
                Some(problem)
            }
        }
    } else {
        None
    };
    rebuild_dir(dir, fill)?;
    check(dir)?;
    mark_finished(dir, stamp)?;
    Ok(Ensured::Built(broken))
}

/// The stamp's text: `stamp`, then "<bytes> <path>" for every regular file
/// under `dir` (symbolic links are their target's business).
pub fn stamp_text(dir: &Path, stamp: &str) -> Result<String> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    files.sort();
    let mut text = format!("{}\n", stamp.trim());
    for file in files.iter().filter(|f| f.as_os_str() != STAMP) {
        let path = dir.join(file);
        let metadata = fs::symlink_metadata(&path)?;
        if metadata.is_file() {
            text.push_str(&format!("{} {}\n", metadata.len(), file.display()));
        }
    }
    Ok(text)
}

/// Every file the stamp lists is there with its recorded size. A stamp
/// from a set-up that recorded no sizes gets them now.
pub fn check_files(dir: &Path) -> Result<()> {
    let stamp_path = dir.join(STAMP);
    let text = fs::read_to_string(&stamp_path)
        .with_context(|| format!("reading {}", stamp_path.display()))?;
    let mut lines = text.lines();
    let stamp = lines.next().unwrap_or_default();
    let mut listed = 0;
    for line in lines {
        let Some((size, file)) = line.split_once(' ') else {
            bail!(
                "broken cache: {} has a bad line '{line}'",
                stamp_path.display()
            );
        };
        let path = dir.join(file);
        let actual = match fs::symlink_metadata(&path) {
            Ok(metadata) => metadata.len(),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                bail!("broken cache: {} is missing", path.display())
            }
            Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
        };
        if size != actual.to_string() {
            bail!(
                "broken cache: {} is {actual} bytes, but set-up left {size} (truncated or \
                 half-written)",
                path.display()
            );
        }
        listed += 1;
    }
    if listed == 0 {
        eprintln!(
            "set-up: recording the file sizes of {} (set up by an older version)",
            dir.display()
        );
        fs::write(&stamp_path, stamp_text(dir, stamp)?)
            .with_context(|| format!("writing {}", stamp_path.display()))?;
    }
    Ok(())
}

/// Every file under `dir` (not folders), relative to `base`.
pub fn collect_files(base: &Path, dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            collect_files(base, &entry.path(), files)?;
        } else {
            files.push(entry.path().strip_prefix(base)?.to_path_buf());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_cache(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-cache-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A fake library install: one 4 kB shared object and a header.
    fn fill(library: &'static str) -> impl Fn(&Path) -> Result<()> {
        move |staging: &Path| {
            let path = staging.join(library);
            fs::create_dir_all(path.parent().unwrap())?;
            fs::write(&path, vec![7u8; 4096])?;
            fs::write(staging.join("header.h"), "#pragma once\n")?;
            Ok(())
        }
    }

    #[test]
    fn a_truncated_shared_library_is_named_and_rebuilt() {
        let cache = temp_cache("truncated");
        for (folder, library) in [
            ("libtorch-2.11.0", "torch/lib/libtorch_cpu.so"),
            ("mlx-0.32.2", "mlx/lib/libmlx.so"),
        ] {
            let dir = cache.join(folder);
            let check = |dir: &Path| setup_check(dir, library);
            assert_eq!(
                ensure_dir(&dir, "v1", check, fill(library)).unwrap(),
                Ensured::Built(None)
            );
            assert_eq!(
                ensure_dir(&dir, "v1", check, fill(library)).unwrap(),
                Ensured::Kept
            );
            // A copy cut short: present, so the old checks passed it.
            fs::OpenOptions::new()
                .write(true)
                .open(dir.join(library))
                .unwrap()
                .set_len(100)
                .unwrap();
            let Ensured::Built(Some(reason)) =
                ensure_dir(&dir, "v1", check, fill(library)).unwrap()
            else {
                panic!("the truncated {library} was kept");
            };
            assert!(
                reason.contains(&format!(
                    "{} is 100 bytes, but set-up left 4096",
                    dir.join(library).display()
                )),
                "{reason}"
            );
            assert_eq!(fs::metadata(dir.join(library)).unwrap().len(), 4096);
        }
        fs::remove_dir_all(&cache).unwrap();
    }

    /// What the real checks do: the library is there.
    fn setup_check(dir: &Path, library: &str) -> Result<()> {
        anyhow::ensure!(dir.join(library).exists(), "{library} is missing");
        Ok(())
    }

    #[test]
    fn a_stamp_without_sizes_gets_them_and_is_checked_from_then_on() {
        let dir = temp_cache("old-stamp");
        fill("lib/libmlx.so")(&dir).unwrap();
        fs::write(dir.join(STAMP), "v1\n").unwrap();
        check_files(&dir).unwrap();
        let stamp = fs::read_to_string(dir.join(STAMP)).unwrap();
        assert_eq!(stamp, "v1\n13 header.h\n4096 lib/libmlx.so\n");
        assert!(finished(&dir, "v1"));
        fs::remove_file(dir.join("header.h")).unwrap();
        let error = check_files(&dir).unwrap_err().to_string();
        assert!(error.contains("header.h is missing"), "{error}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stamps_match_whatever_their_trailing_space() {
        let dir = std::env::temp_dir().join(format!("xtask-stamp-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert!(!finished(&dir, "abc strip "));
        mark_finished(&dir, "abc strip ").unwrap();
        assert!(finished(&dir, "abc strip "));
        assert!(!finished(&dir, "abd strip "));
        fs::remove_dir_all(dir).unwrap();
    }
}
