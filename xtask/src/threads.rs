//! `--threads`: one count, or a list or range of them (`1,2,4`, `1-8*2`,
//! as `--set` takes whole numbers: `bench_core::sweep`), each count a
//! configuration of its own.

use serde::{Deserialize, Serialize};

/// The thread counts asked, in order; at least one, none below 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Saved")]
pub struct Threads(pub Vec<usize>);

/// A run's saved settings hold a list, or one count (runs saved before
/// `--threads` took lists).
#[derive(Deserialize)]
#[serde(untagged)]
enum Saved {
    One(usize),
    Many(Vec<usize>),
}

impl From<Saved> for Threads {
    fn from(saved: Saved) -> Self {
        match saved {
            Saved::One(n) => Self(vec![n]),
            Saved::Many(list) => Self(list),
        }
    }
}

/// `--threads`' parser; the error names the bad element.
pub fn parse(text: &str) -> Result<Threads, String> {
    let counts = bench_core::sweep::whole_numbers(text)?;
    counts
        .iter()
        .map(|&n| match usize::try_from(n) {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!("{n} threads: a count is at least 1")),
        })
        .collect::<Result<Vec<usize>, String>>()
        .map(Threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_or_range_of_counts_and_bad_ones_named() {
        assert_eq!(parse("4"), Ok(Threads(vec![4])));
        assert_eq!(parse("1,2,4"), Ok(Threads(vec![1, 2, 4])));
        assert_eq!(parse("1-8*2"), Ok(Threads(vec![1, 2, 4, 8])));
        assert_eq!(
            parse("2,0"),
            Err("0 threads: a count is at least 1".to_owned())
        );
        assert!(parse("2,x").unwrap_err().contains("'x' is neither"));
    }

    #[test]
    fn saved_settings_of_one_count_or_a_list_read_back() {
        let one: Option<Threads> = serde_json::from_str("4").unwrap();
        assert_eq!(one, Some(Threads(vec![4])));
        let none: Option<Threads> = serde_json::from_str("null").unwrap();
        assert_eq!(none, None);
        let list = serde_json::to_string(&Threads(vec![1, 2])).unwrap();
        assert_eq!(list, "[1,2]");
        let back: Threads = serde_json::from_str(&list).unwrap();
        assert_eq!(back, Threads(vec![1, 2]));
    }
}
