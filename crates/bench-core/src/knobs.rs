//! A benchmark's `--set key=value` knobs, declared once: name, kind (type
//! and range), default and one line of help. The runner checks every given
//! knob against the declaration before anything runs, `--help` and
//! `--list-knobs` print it, and [`crate::Cell::option`] reads only declared
//! knobs, so the declaration and the parsing cannot drift apart.

use std::fmt::{self, Write as _};

use anyhow::{bail, Result};

/// What values a knob takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// A whole number in `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    /// A finite number in `min..=max`.
    Float {
        min: f64,
        max: f64,
    },
    /// A number above zero.
    Positive,
    Bool,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// Free text (a prompt, a language code).
    Text,
    /// A file or folder on this machine.
    Path,
    /// A Hugging Face Hub repo id or a local model folder.
    Model,
}

/// One declared knob.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Knob {
    pub name: &'static str,
    pub kind: Kind,
    /// The default as a user reads it, e.g. "512 (paper: 10000)".
    pub default: &'static str,
    pub help: &'static str,
}

impl Knob {
    /// Whole numbers from `min` up, without an upper bound.
    pub const fn at_least(
        name: &'static str,
        min: i64,
        default: &'static str,
        help: &'static str,
    ) -> Self {
        Self::int(name, min, i64::MAX, default, help)
    }

    pub const fn int(
        name: &'static str,
        min: i64,
        max: i64,
        default: &'static str,
        help: &'static str,
    ) -> Self {
        Self {
            name,
            kind: Kind::Int { min, max },
            default,
            help,
        }
    }

    pub const fn new(
        name: &'static str,
        kind: Kind,
        default: &'static str,
        help: &'static str,
    ) -> Self {
        Self {
            name,
            kind,
            default,
            help,
        }
    }

    /// Checks one value; the error says what the knob takes.
    pub fn check(&self, value: &str) -> Result<()> {
        match self.fault(value) {
            None => Ok(()),
            Some(why) => bail!(
                "--set {}={value}: {why} (expected {})",
                self.name,
                self.kind
            ),
        }
    }

    /// What is wrong with one value ("out of range", ...), or None.
    pub fn fault(&self, value: &str) -> Option<&'static str> {
        let number = || value.parse::<f64>().ok();
        match self.kind {
            Kind::Int { min, max } => match value.parse::<i64>() {
                Err(_) => Some("not a whole number"),
                Ok(n) if n < min || n > max => Some("out of range"),
                Ok(_) => None,
            },
            Kind::Float { min, max } => match number() {
                None => Some("not a number"),
                Some(x) if !x.is_finite() || x < min || x > max => Some("out of range"),
                Some(_) => None,
            },
            Kind::Positive => match number() {
                None => Some("not a number"),
                Some(x) if !x.is_finite() || x <= 0.0 => Some("out of range"),
                Some(_) => None,
            },
            Kind::Bool => value
                .parse::<bool>()
                .is_err()
                .then_some("not true or false"),
            Kind::Choice(words) => (!words.contains(&value)).then_some("not one of the choices"),
            Kind::Text => None,
            Kind::Path | Kind::Model => value.trim().is_empty().then_some("empty"),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Kind::Int { min, max: i64::MAX } => write!(f, "a whole number >= {min}"),
            Kind::Int { min, max } => write!(f, "a whole number from {min} to {max}"),
            Kind::Float { min, max } if max.is_infinite() => write!(f, "a number >= {min}"),
            Kind::Float { min, max } => write!(f, "a number from {min} to {max}"),
            Kind::Positive => f.write_str("a number > 0"),
            Kind::Bool => f.write_str("true or false"),
            Kind::Choice(words) => f.write_str(&words.join(" | ")),
            Kind::Text => f.write_str("text"),
            Kind::Path => f.write_str("a path"),
            Kind::Model => f.write_str("a Hub repo id or a local model folder"),
        }
    }
}

/// The declared knob `key` of a benchmark.
pub fn find<'a>(knobs: &'a [Knob], key: &str) -> Option<&'a Knob> {
    knobs.iter().find(|knob| knob.name == key)
}

/// Checks every `--set` pair of a benchmark before anything runs: an
/// unknown key names the closest known one; a bad value says what it takes.
pub fn check(benchmark: &str, knobs: &[Knob], options: &[(String, String)]) -> Result<()> {
    for (key, value) in options {
        match find(knobs, key) {
            Some(knob) => knob.check(value)?,
            None => bail!("{}", unknown(benchmark, knobs, key)),
        }
    }
    Ok(())
}

/// "bert has no knob 'batchsize'; did you mean 'batch_size'? ...".
pub(crate) fn unknown(benchmark: &str, knobs: &[Knob], key: &str) -> String {
    let names = || knobs.iter().map(|knob| knob.name);
    let mut text = format!("{benchmark} has no knob '{key}'");
    let closest = names()
        .map(|name| (strsim::levenshtein(name, key), name))
        .min()
        // A distant "closest" key (batch_size for n) would mislead.
        .filter(|&(distance, _)| distance <= key.len().div_ceil(2));
    if let Some((_, name)) = closest {
        write!(text, "; did you mean '{name}'?").ok();
    }
    let all: Vec<&str> = names().collect();
    write!(
        text,
        " Its knobs: {} (bench-{benchmark} --list-knobs says what each does)",
        all.join(", ")
    )
    .ok();
    text
}

/// A table of knobs for `--help` and `--list-knobs`.
pub fn describe(knobs: &[Knob]) -> String {
    let width = knobs.iter().map(|knob| knob.name.len()).max().unwrap_or(0);
    let mut text = String::new();
    for knob in knobs {
        writeln!(
            text,
            "  {:width$}  {}\n  {:width$}  [{}; default: {}]",
            knob.name, knob.help, "", knob.kind, knob.default
        )
        .ok();
    }
    text
}

/// The `--set` pairs meant for `benchmark`: a plain `key=value` is for every
/// benchmark; `bench.key=value` is for that one only (the prefix is dropped
/// for it, the pair for the others). A prefix naming none of `all` is an error.
pub fn scoped(
    benchmark: &str,
    all: &[&str],
    options: &[(String, String)],
) -> Result<Vec<(String, String)>> {
    let mut mine = Vec::new();
    for (key, value) in options {
        match key.split_once('.') {
            None => mine.push((key.clone(), value.clone())),
            Some((scope, rest)) if scope == benchmark => {
                mine.push((rest.to_owned(), value.clone()))
            }
            Some((scope, _)) if all.contains(&scope) => {}
            Some((scope, _)) => {
                let closest = all
                    .iter()
                    .min_by_key(|name| strsim::levenshtein(name, scope))
                    .map(|name| format!("; did you mean '{name}'?"))
                    .unwrap_or_default();
                bail!("--set {key}={value}: no benchmark is called '{scope}'{closest}")
            }
        }
    }
    Ok(mine)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOBS: &[Knob] = &[
        Knob::at_least("batch_size", 1, "16", "examples per step"),
        Knob::new("lr", Kind::Positive, "5e-5", "learning rate"),
        Knob::new(
            "target",
            Kind::Float { min: 0.0, max: 1.0 },
            "0.9",
            "accuracy",
        ),
        Knob::new("offline", Kind::Bool, "false", "no Hub"),
    ];

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn error(list: &[(&str, &str)]) -> String {
        format!("{:#}", check("bert", KNOBS, &pairs(list)).unwrap_err())
    }

    #[test]
    fn an_unknown_key_names_the_closest_known_one() {
        let text = error(&[("batchsize", "4")]);
        assert!(text.contains("bert has no knob 'batchsize'"), "{text}");
        assert!(text.contains("did you mean 'batch_size'?"), "{text}");
        assert!(
            text.contains("Its knobs: batch_size, lr, target, offline"),
            "{text}"
        );
        let far = error(&[("n", "4")]);
        assert!(!far.contains("did you mean"), "{far}");
    }

    #[test]
    fn values_out_of_range_or_of_the_wrong_type_say_what_the_knob_takes() {
        assert!(
            error(&[("batch_size", "0")]).contains("out of range (expected a whole number >= 1)")
        );
        assert!(error(&[("batch_size", "-1")]).contains("out of range"));
        assert!(error(&[("batch_size", "x")]).contains("not a whole number"));
        assert!(error(&[("lr", "0")]).contains("expected a number > 0"));
        assert!(error(&[("lr", "NaN")]).contains("out of range"));
        assert!(error(&[("target", "1.5")]).contains("from 0 to 1"));
        assert!(error(&[("offline", "yes")]).contains("true or false"));
        // The execution mode is a cell dimension (--execution), not a knob.
        assert!(error(&[("execution", "eager")]).contains("has no knob 'execution'"));
        let fine = pairs(&[("batch_size", "8"), ("lr", "1e-3"), ("offline", "true")]);
        check("bert", KNOBS, &fine).unwrap();
    }

    #[test]
    fn scoped_knobs_reach_only_their_benchmark() {
        let all = ["bert", "transfer"];
        let given = pairs(&[
            ("bert.batch_size", "4"),
            ("seed_text", "x"),
            ("transfer.n", "64"),
        ]);
        assert_eq!(
            scoped("bert", &all, &given).unwrap(),
            pairs(&[("batch_size", "4"), ("seed_text", "x")])
        );
        assert_eq!(
            scoped("transfer", &all, &given).unwrap(),
            pairs(&[("seed_text", "x"), ("n", "64")])
        );
        let typo = scoped("bert", &all, &pairs(&[("bret.n", "1")])).unwrap_err();
        assert!(typo.to_string().contains("did you mean 'bert'?"), "{typo}");
    }

    #[test]
    fn the_table_lists_every_knob_with_its_range_and_default() {
        let text = describe(KNOBS);
        for needle in [
            "batch_size",
            "examples per step",
            "a whole number >= 1",
            "default: 16",
            "true or false",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }
}
