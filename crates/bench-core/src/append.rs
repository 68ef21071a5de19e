//! Whole-row appends to a results file: a row reaches the file complete or
//! not at all, so that a reader (the report, a second suite) never sees
//! half a row, whatever stops the writer.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A results file opened for appending whole rows.
pub struct Appender {
    file: File,
    path: PathBuf,
}

impl Appender {
    /// Opens (creating it and its folder) `path` for appending; errors name it.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {} for appending", path.display()))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends `row(is_empty)`, where `is_empty` says whether the file has
    /// nothing yet (so a header goes first), in one write under an exclusive
    /// lock, so that two writers neither interleave nor both write a header.
    /// A short write (a full disk, a file size limit) is undone.
    pub fn append(&self, row: impl FnOnce(bool) -> Result<Vec<u8>>) -> Result<()> {
        // Where the file system has no locks (some network mounts), rows
        // are still single writes; only the header could come twice.
        let locked = fs4::FileExt::lock(&self.file).is_ok();
        let outcome = self.append_locked(row);
        if locked {
            let _ = fs4::FileExt::unlock(&self.file);
        }
        outcome
    }

    fn append_locked(&self, row: impl FnOnce(bool) -> Result<Vec<u8>>) -> Result<()> {
        let before = self
            .file
            .metadata()
            .with_context(|| format!("reading the size of {}", self.path.display()))?
            .len();
        let bytes = row(before == 0)?;
        let mut file = &self.file;
        let written = match file.write(&bytes) {
            // A short write: try the rest once; it fails when space ran out.
            Ok(n) if n < bytes.len() => file.write_all(&bytes[n..]),
            Ok(_) => Ok(()),
            Err(error) => Err(error),
        };
        if let Err(error) = written {
            // Leave the file as it was; a character device (/dev/full) has
            // no length to restore.
            let _ = self.file.set_len(before);
            bail!(
                "writing a row to {}: {error} (the row was not written)",
                self.path.display()
            );
        }
        Ok(())
    }
}
