//! The labelled data: the SpamAssassin public corpus (registry asset
//! `spam-assassin`), spam vs ham, with a fixed train/test split.
//!
//! What the model reads of an email: its Subject line and its body, as
//! stored (MIME parts, HTML and all), with runs of whitespace collapsed.
//! The other headers are dropped: they record how the corpus was
//! collected (ham came through particular mailing lists and relays), so a
//! classifier could learn the collection instead of the text.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use bench_core::assets::asset_dir;

/// The corpus's folders and their labels: 4150 ham, 1896 spam.
pub const FOLDERS: [(&str, Label); 5] = [
    ("easy-ham-1", Label::Ham),
    ("easy-ham-2", Label::Ham),
    ("hard-ham-1", Label::Ham),
    ("spam-1", Label::Spam),
    ("spam-2", Label::Spam),
];

/// The seed of the train/test split: fixed, so that the test set is the
/// same whatever the run's seed.
const SPLIT_SEED: u64 = 0x5EED_5A17;

/// One email in five is held out for testing.
const TEST_FRACTION: f64 = 0.2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Label {
    Ham = 0,
    Spam = 1,
}

impl Label {
    pub const COUNT: usize = 2;

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One email file and its label.
#[derive(Clone, Debug, PartialEq)]
pub struct Email {
    pub path: PathBuf,
    pub label: Label,
}

impl Email {
    /// The text the model reads (see the module's notes), cut to
    /// `max_chars` characters: a bound on tokenising work that leaves the
    /// first tokens as they would be without it.
    pub fn text(&self, max_chars: usize) -> Result<String> {
        let bytes = std::fs::read(&self.path)
            .with_context(|| format!("reading email {}", self.path.display()))?;
        // Emails of 2002 come in many charsets: decode lossily.
        let raw = String::from_utf8_lossy(&bytes);
        let text = subject_and_body(&raw);
        let words: Vec<&str> = text.split_whitespace().collect();
        Ok(words.join(" ").chars().take(max_chars).collect())
    }
}

/// The Subject header's value (with folded lines joined) and the body.
fn subject_and_body(raw: &str) -> String {
    let (headers, body) = match raw.find("\n\n") {
        Some(end) => (&raw[..end], &raw[end + 2..]),
        // Some files use CRLF; a file with no blank line is all headers.
        None => match raw.find("\r\n\r\n") {
            Some(end) => (&raw[..end], &raw[end + 4..]),
            None => (raw, ""),
        },
    };
    let mut subject = String::new();
    let mut in_subject = false;
    for line in headers.lines() {
        if in_subject && line.starts_with([' ', '\t']) {
            subject.push_str(line);
            continue;
        }
        in_subject = false;
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("subject") && subject.is_empty() {
                subject.push_str(value);
                in_subject = true;
            }
        }
    }
    format!("{}\n{body}", subject.trim())
}

/// The corpus, split into training and test emails.
#[derive(Clone, Debug)]
pub struct SpamSplit {
    pub train: Vec<Email>,
    pub test: Vec<Email>,
}

impl SpamSplit {
    /// The registry copy (`cargo xtask setup` unpacks it).
    pub fn load() -> Result<Self> {
        Self::from_dir(&asset_dir("spam-assassin")?)
    }

    /// Lists every email under `dir` (sorted by folder and file name) and
    /// splits them with a fixed seed: the same split on every machine.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let mut emails = Vec::new();
        for (folder, label) in FOLDERS {
            let folder_dir = dir.join(folder);
            let mut paths: Vec<PathBuf> = std::fs::read_dir(&folder_dir)
                .with_context(|| format!("listing the corpus folder {}", folder_dir.display()))?
                .map(|entry| entry.map(|e| e.path()))
                .collect::<std::io::Result<_>>()
                .with_context(|| format!("listing {}", folder_dir.display()))?;
            // The asset keeps a JSON copy beside each .txt: read the text.
            paths.retain(|p| p.extension().is_some_and(|e| e == "txt"));
            ensure!(
                !paths.is_empty(),
                "corpus folder {} holds no .txt emails",
                folder_dir.display()
            );
            paths.sort();
            emails.extend(paths.into_iter().map(|path| Email { path, label }));
        }
        let order = permutation(emails.len(), SPLIT_SEED);
        let test_len = (emails.len() as f64 * TEST_FRACTION).round() as usize;
        let (test, train) = order.split_at(test_len);
        Ok(Self {
            train: train.iter().map(|&i| emails[i].clone()).collect(),
            test: test.iter().map(|&i| emails[i].clone()).collect(),
        })
    }
}

/// A seeded permutation of 0..n (Fisher-Yates over SplitMix64), the same
/// on every platform: the data order both twins see.
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    bench_core::rng::SplitMix64::new(seed).shuffle(&mut order);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_other_than_subject_are_dropped() {
        let raw = "From: a@b\nSubject: Cheap\n  meds now\nReceived: x\n\nBuy  them\n\ttoday.\n";
        let email = subject_and_body(raw);
        assert_eq!(email, "Cheap  meds now\nBuy  them\n\ttoday.\n");
        assert!(!email.contains("Received"));
        assert_eq!(subject_and_body("Subject: only headers"), "only headers\n");
    }

    #[test]
    fn permutation_is_seeded_and_complete() {
        let a = permutation(100, 7);
        assert_eq!(a, permutation(100, 7));
        assert_ne!(a, permutation(100, 8));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }
}
