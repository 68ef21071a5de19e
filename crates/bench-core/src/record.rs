//! A run's record on disk: one [`Row`] per line of a JSONL file, and the
//! CSV export of each row in the file beside it (`<run>.jsonl` ->
//! `<run>.csv`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::append::Appender;
use crate::csv_export::CsvRow;
use crate::row::Row;

/// The CSV export beside a run's JSONL record.
pub fn csv_path(jsonl: &Path) -> PathBuf {
    jsonl.with_extension("csv")
}

/// Appends rows to a run's JSONL record, and each row's CSV export to the
/// CSV file beside it. Each line is one write, whole or not at all
/// ([`Appender`]), so a crash or a full disk loses at most that row.
pub struct RowWriter {
    jsonl: Appender,
    csv: Appender,
}

impl RowWriter {
    pub fn open(jsonl: &Path) -> Result<Self> {
        Ok(Self {
            jsonl: Appender::open(jsonl)?,
            csv: Appender::open(&csv_path(jsonl))?,
        })
    }

    pub fn append(&mut self, row: &Row) -> Result<()> {
        self.jsonl.append(|_| {
            let mut line = serde_json::to_vec(row)?;
            line.push(b'\n');
            Ok(line)
        })?;
        self.csv
            .append(|with_header| CsvRow::from(row).encode(with_header))
    }
}

/// Reads a run's JSONL record; a line that is not a row is an error
/// naming the file and line.
pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).with_context(|| {
                format!("{}: line {} is not a result row", path.display(), index + 1)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::Status;

    #[test]
    fn a_row_reads_back_from_its_jsonl_line_as_written() {
        let dir = std::env::temp_dir().join(format!("row-roundtrip-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("run.jsonl");
        let failed = Row::for_tests().ended(Status::Failed, "out of memory");
        let mut writer = RowWriter::open(&path).unwrap();
        writer.append(&failed).unwrap();
        writer.append(&failed).unwrap();
        assert_eq!(read_rows(&path).unwrap(), vec![failed.clone(), failed]);
        let csv = std::fs::read_to_string(csv_path(&path)).unwrap();
        assert_eq!(csv.lines().count(), 3, "one header, two rows:\n{csv}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
