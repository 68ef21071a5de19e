//! Campaigns that the headline leaves out (`reports/superseded.csv`): a
//! device's runs at one commit whose figures a later campaign showed to be
//! unsound (references weaker than their framework's best, sittings
//! pooled across hosts). The headline table and "each framework at its
//! fastest" (and the scaling charts) leave those rows out and say so,
//! naming the reason; RESULTS.md still lists them under every run and
//! beside the references, so nothing measured is lost.
//!
//! The file's columns: `device` (as the tables print it, e.g. `GPU: NVIDIA
//! H200`), `commit` (its first characters suffice) and `reason`.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{ensure, Context, Result};
use bench_core::Row;
use serde::Deserialize;

use crate::results::machine;

/// One left-out campaign: a device's rows at one commit.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Superseded {
    pub device: String,
    pub commit: String,
    pub reason: String,
}

impl Superseded {
    pub fn covers(&self, row: &Row) -> bool {
        machine(row) == self.device && row.environment.git_commit.starts_with(&self.commit)
    }
}

/// The list in `path`; none where the file does not exist.
pub fn load(path: &Path) -> Result<Vec<Superseded>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("reading {}", path.display()))
}

fn parse(text: &str) -> Result<Vec<Superseded>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut list = Vec::new();
    for (line, entry) in reader.deserialize::<Superseded>().enumerate() {
        let entry = entry
            .with_context(|| format!("entry {} (columns: device, commit, reason)", line + 1))?;
        ensure!(
            entry.commit.len() >= 7,
            "entry {}: commit '{}' is too short to name one commit (7 characters at least)",
            line + 1,
            entry.commit
        );
        list.push(entry);
    }
    Ok(list)
}

/// Whether any entry covers `row`.
pub fn is_superseded(list: &[Superseded], row: &Row) -> bool {
    list.iter().any(|s| s.covers(row))
}

/// The entries that cover none of `rows` (a device or commit mistyped).
pub fn unused<'a>(list: &'a [Superseded], rows: &[Row]) -> Vec<&'a Superseded> {
    list.iter()
        .filter(|entry| !rows.iter().any(|r| entry.covers(r)))
        .collect()
}

/// A line per entry that covers some of `rows`, for below the headline.
pub fn notes(list: &[Superseded], rows: &[Row]) -> String {
    let mut out = String::new();
    for entry in list {
        let covered = rows.iter().filter(|r| entry.covers(r)).count();
        if covered > 0 {
            let _ = writeln!(
                out,
                "- {}: the rows of commit `{}` ({covered}) are left out of these tables: {} (listed in RESULTS.md under every run; `reports/superseded.csv`)",
                entry.device, entry.commit, entry.reason
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::row;

    const FILE: &str = "device,commit,reason\n\
        CPU: EPYC (2 cores),abc1234,\"references weaker than their framework's best, two hosts pooled\"\n";

    fn at(commit: &str) -> Row {
        let mut r = row("torch", "switch", 1.0, "r");
        r.environment.git_commit = commit.into();
        r
    }

    #[test]
    fn an_entry_covers_its_devices_rows_at_its_commit_alone() {
        let list = parse(FILE).unwrap();
        assert_eq!(list.len(), 1);
        assert!(is_superseded(&list, &at("abc1234def567")));
        assert!(!is_superseded(&list, &at("abc9999def567")));
        let mut elsewhere = at("abc1234def567");
        elsewhere.environment.cpu = "Xeon".into();
        assert!(!is_superseded(&list, &elsewhere));
        let notes = notes(&list, &[at("abc1234def567"), at("fff0000")]);
        assert_eq!(
            notes,
            "- CPU: EPYC (2 cores): the rows of commit `abc1234` (1) are left out of these tables: references weaker than their framework's best, two hosts pooled (listed in RESULTS.md under every run; `reports/superseded.csv`)\n"
        );
        assert_eq!(super::notes(&list, &[at("fff0000")]), "");
        assert!(unused(&list, &[at("abc1234def567")]).is_empty());
        assert_eq!(unused(&list, &[at("fff0000")]), vec![&list[0]]);
    }

    #[test]
    fn a_bad_entry_is_named() {
        let error = format!(
            "{:#}",
            parse("device,commit\nGPU: X,abc1234\n").unwrap_err()
        );
        assert!(
            error.contains("entry 1 (columns: device, commit, reason)"),
            "{error}"
        );
        let error = format!(
            "{:#}",
            parse("device,commit,reason\nGPU: X,abc,why\n").unwrap_err()
        );
        assert!(error.contains("commit 'abc' is too short"), "{error}");
    }

    #[test]
    fn no_file_is_no_entry() {
        assert!(load(Path::new("/nonexistent/superseded.csv"))
            .unwrap()
            .is_empty());
    }
}
