//! What a runner tells whoever started it, on its standard output beside
//! its human-readable lines: one message per line, after [`PREFIX`].
//!
//! - [`Message::Plan`] (from `--check`): for each cell its knobs make (a
//!   list or range of values makes several) and each framework asked, the
//!   start record it would have: settings resolved, knobs checked.
//! - [`Message::Start`]: a cell begins; its start record.
//! - [`Message::Row`]: a row the runner has just appended to the run's
//!   files.
//! - [`Message::Ceiling`]: what the `device-ceiling` probe measured (the
//!   device's copy bandwidth, [`crate::ceiling`]).
//!
//! So the starter (`cargo xtask bench`, or a runner that runs each
//! framework in a process of its own) knows how each cell ended without
//! reading the files back, and writes the failed row of a runner that died
//! from that runner's own start record ([`Cell::failure`]).

use std::io::Write;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::ceiling::Ceiling;
use crate::measure::MeasureSettings;
use crate::row::{Row, Status};

/// Exit status of a runner that recorded at least one failed cell (its
/// rows say which); any other non-zero status is a runner that died.
pub const EXIT_FAILURES_RECORDED: u8 = 3;

/// The start of a message line.
pub const PREFIX: &str = "@mlx-vs-torch ";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "message", rename_all = "lowercase")]
pub enum Message {
    /// What a cell of one framework would be: its start record, how it
    /// would be measured, and its `--set` pairs (one value each, scope
    /// prefixes dropped; None from a runner of before knob lists).
    Plan {
        start: Row,
        measure: MeasureSettings,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        options: Option<Vec<(String, String)>>,
    },
    Start {
        row: Row,
    },
    Row {
        row: Row,
    },
    Ceiling {
        ceiling: Ceiling,
    },
}

impl Message {
    /// Prints the message on standard output, flushed at once: the starter
    /// may be all that is left of it if the process dies next.
    pub fn emit(&self) -> Result<()> {
        let json = serde_json::to_string(self)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{PREFIX}{json}")?;
        out.flush().context("writing to standard output")
    }

    /// The message of an output line; None for any other line. A message
    /// glued to the end of a native library's unterminated output is
    /// found all the same.
    pub fn parse(line: &str) -> Option<Result<Self>> {
        let json = &line[line.find(PREFIX)? + PREFIX.len()..];
        Some(serde_json::from_str(json).with_context(|| format!("a runner message: {json}")))
    }
}

/// One cell as its starter follows it: the start record and the rows that
/// came.
#[derive(Clone, Debug, Default)]
pub struct Cell {
    pub start: Option<Row>,
    pub rows: Vec<Row>,
}

impl Cell {
    /// Takes a message of the runner's.
    pub fn take(&mut self, message: Message) {
        match message {
            Message::Start { row } => self.start = Some(row),
            Message::Row { row } => self.rows.push(row),
            Message::Plan { .. } | Message::Ceiling { .. } => {}
        }
    }

    /// How the cell ended by its rows: failed or interrupted where any row
    /// says so, else ok where any case was measured, else skipped; None
    /// when no row came.
    pub fn status(&self) -> Option<Status> {
        let any = |status| self.rows.iter().any(|row| row.status == status);
        if self.rows.is_empty() {
            None
        } else if any(Status::Failed) {
            Some(Status::Failed)
        } else if any(Status::Interrupted) {
            Some(Status::Interrupted)
        } else if any(Status::Ok) {
            Some(Status::Ok)
        } else {
            Some(Status::Skipped)
        }
    }

    /// The row that records a runner that ended without finishing its
    /// cell, made from its start record (or, where it died before giving
    /// one, from `fallback`, the record its `--check` gave).
    pub fn failure(&self, fallback: Option<&Row>, status: Status, reason: &str) -> Option<Row> {
        self.start
            .as_ref()
            .or(fallback)
            .map(|start| start.ended(status, reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_reads_back_from_its_line_and_other_lines_are_not_messages() {
        let message = Message::Start {
            row: Row::for_tests(),
        };
        let line = format!("{PREFIX}{}", serde_json::to_string(&message).unwrap());
        assert_eq!(Message::parse(&line).unwrap().unwrap(), message);
        assert!(Message::parse("bert step torch cpu f32: median 0.1 s").is_none());
        let glued = format!("a library's unfinished line{line}");
        assert_eq!(Message::parse(&glued).unwrap().unwrap(), message);
        let broken = Message::parse(&format!("{PREFIX}{{")).unwrap();
        assert!(broken.is_err());
    }

    #[test]
    fn a_cell_ends_as_its_rows_say_and_a_dead_one_fails_from_its_start() {
        let mut cell = Cell::default();
        assert_eq!(cell.status(), None);
        assert!(cell.failure(None, Status::Failed, "killed").is_none());
        cell.take(Message::Start {
            row: Row::for_tests(),
        });
        let failure = cell.failure(None, Status::Failed, "killed").unwrap();
        assert_eq!(
            (failure.status, failure.reason.as_str()),
            (Status::Failed, "killed")
        );
        assert_eq!(failure.benchmark, "bert");
        cell.take(Message::Row {
            row: Row::for_tests().ended(Status::Skipped, "no GPU"),
        });
        assert_eq!(cell.status(), Some(Status::Skipped));
        cell.take(Message::Row {
            row: Row::for_tests().ended(Status::Failed, "x"),
        });
        assert_eq!(cell.status(), Some(Status::Failed));
    }
}
