//! Lists and ranges of knob values, as llama-bench takes them:
//! `--set batch_size=1,8,32`, `--set prompt_tokens=128-1024*2` (128, 256,
//! 512, 1024), `--set seq_len=32-128+32` (32, 64, 96, 128). Several lists
//! make their product: every combination is one cell, the first knob given
//! varying slowest.
//!
//! Whole-number knobs take ranges, `first-last+step` and `first-last*mult`
//! (`first-last` steps by 1), inside a comma list; other knobs take comma
//! lists; a text knob (a prompt) takes its value whole, commas and all.
//! Every element is checked against the knob's declaration, and a bad one
//! is named, before anything runs.

use anyhow::{bail, Result};

use crate::knobs::{self, Kind, Knob};

/// Most values one list or range may give, and most combinations a
/// sweep may make: a typo (`1-100000`) is refused, not run for days.
pub const MAX_VALUES: usize = 1000;

/// The whole numbers of a list with ranges, e.g. "1,8,32" or "128-1024*2"
/// or "1-3,8". An element that starts with '-' is a (negative) number,
/// not a range. The error names the bad element.
pub fn whole_numbers(text: &str) -> std::result::Result<Vec<i64>, String> {
    let mut values = Vec::new();
    for element in elements(text)? {
        let more = match element.parse::<i64>() {
            Ok(n) => vec![n],
            Err(_) => range(element)?,
        };
        values.extend(more);
        if values.len() > MAX_VALUES {
            return Err(format!("more than {MAX_VALUES} values"));
        }
    }
    no_repeats(&values)?;
    Ok(values)
}

/// The comma-separated elements of a list, trimmed; an empty one is an error.
fn elements(text: &str) -> std::result::Result<Vec<&str>, String> {
    text.split(',')
        .map(str::trim)
        .map(|element| {
            if element.is_empty() {
                Err("an empty element (two commas, or one at an end)".to_owned())
            } else {
                Ok(element)
            }
        })
        .collect()
}

/// `first-last`, `first-last+step` or `first-last*mult`.
fn range(element: &str) -> std::result::Result<Vec<i64>, String> {
    let not_a_range = || {
        format!(
            "'{element}' is neither a whole number nor a range (first-last, first-last+step, first-last*mult)"
        )
    };
    let number = |text: &str| text.trim().parse::<i64>().map_err(|_| not_a_range());
    let (first, rest) = element.split_once('-').ok_or_else(not_a_range)?;
    if first.trim().is_empty() {
        return Err(not_a_range());
    }
    let first = number(first)?;
    let (last, next): (i64, Box<dyn Fn(i64) -> Option<i64>>) =
        if let Some((last, step)) = rest.split_once('+') {
            let step = number(step)?;
            if step < 1 {
                return Err(format!("'{element}': the step must be at least 1"));
            }
            (number(last)?, Box::new(move |n: i64| n.checked_add(step)))
        } else if let Some((last, mult)) = rest.split_once('*') {
            let mult = number(mult)?;
            if mult < 2 || first < 1 {
                return Err(format!(
                    "'{element}': a multiplying range needs first >= 1 and mult >= 2"
                ));
            }
            (number(last)?, Box::new(move |n: i64| n.checked_mul(mult)))
        } else {
            (number(rest)?, Box::new(|n: i64| n.checked_add(1)))
        };
    if first > last {
        return Err(format!("'{element}': first is above last"));
    }
    let mut values = vec![first];
    while let Some(n) = next(*values.last().expect("one value")).filter(|&n| n <= last) {
        values.push(n);
        if values.len() > MAX_VALUES {
            return Err(format!("'{element}' gives more than {MAX_VALUES} values"));
        }
    }
    Ok(values)
}

fn no_repeats<T: PartialEq + std::fmt::Display>(values: &[T]) -> std::result::Result<(), String> {
    for (index, value) in values.iter().enumerate() {
        if values[..index].contains(value) {
            return Err(format!("'{value}' comes twice"));
        }
    }
    Ok(())
}

/// The values of one `--set name=text`, each checked against the knob: a
/// list or range where the knob takes one, else `text` whole.
pub fn values(knob: &Knob, text: &str) -> Result<Vec<String>> {
    let name = knob.name;
    let listed = text.contains(',') || (is_whole(knob) && is_range(text));
    if !listed || knob.kind == Kind::Text {
        knob.check(text)?;
        return Ok(vec![text.to_owned()]);
    }
    let listed = if is_whole(knob) {
        whole_numbers(text).map(|ns| ns.iter().map(ToString::to_string).collect())
    } else {
        elements(text).and_then(|found| {
            no_repeats(&found)?;
            Ok(found.into_iter().map(str::to_owned).collect::<Vec<_>>())
        })
    };
    let values: Vec<String> = match listed {
        Ok(values) => values,
        Err(why) => bail!("--set {name}={text}: {why}"),
    };
    for value in &values {
        if let Some(why) = knob.fault(value) {
            bail!(
                "--set {name}={text}: the element {value} is {why} (expected {})",
                knob.kind
            );
        }
    }
    Ok(values)
}

fn is_whole(knob: &Knob) -> bool {
    matches!(knob.kind, Kind::Int { .. })
}

/// A '-' after the first character: a range (a leading one is a sign).
fn is_range(text: &str) -> bool {
    text.trim().get(1..).is_some_and(|rest| rest.contains('-'))
}

/// The cells a benchmark's `--set` pairs ask for: every combination of
/// their values, the first key given varying slowest. A key given twice
/// keeps its first place and its last values (as a single `--set` does, the
/// last wins). An unknown key names the closest known one.
pub fn combinations(
    benchmark: &str,
    declared: &[Knob],
    options: &[(String, String)],
) -> Result<Vec<Vec<(String, String)>>> {
    let mut lists: Vec<(&str, Vec<String>)> = Vec::new();
    for (key, text) in options {
        let Some(knob) = knobs::find(declared, key) else {
            bail!("{}", knobs::unknown(benchmark, declared, key));
        };
        let values = values(knob, text)?;
        match lists.iter_mut().find(|(name, _)| name == key) {
            Some(list) => list.1 = values,
            None => lists.push((key, values)),
        }
    }
    let count = lists.iter().try_fold(1usize, |product, (_, values)| {
        product.checked_mul(values.len())
    });
    if count.is_none_or(|count| count > MAX_VALUES) {
        let sizes: Vec<String> = lists
            .iter()
            .map(|(name, values)| format!("{name}: {}", values.len()))
            .collect();
        bail!(
            "the --set lists make more than {MAX_VALUES} combinations ({}); split the sweep",
            sizes.join(", ")
        );
    }
    let mut cells = vec![Vec::new()];
    for (name, values) in &lists {
        cells = cells
            .into_iter()
            .flat_map(|cell: Vec<(String, String)>| {
                values.iter().map(move |value| {
                    let mut cell = cell.clone();
                    cell.push(((*name).to_owned(), value.clone()));
                    cell
                })
            })
            .collect();
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOBS: &[Knob] = &[
        Knob::at_least("batch_size", 1, "16", "examples per step"),
        Knob::int("seq_len", 8, 512, "128", "tokens"),
        Knob::new("lr", Kind::Positive, "5e-5", "learning rate"),
        Knob::new("weights", Kind::Choice(&["hub", "random"]), "hub", "w"),
        Knob::new("prompt", Kind::Text, "a text", "your prompt"),
    ];

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn error(list: &[(&str, &str)]) -> String {
        format!(
            "{:#}",
            combinations("bert", KNOBS, &pairs(list)).unwrap_err()
        )
    }

    #[test]
    fn lists_and_ranges_give_their_values_in_order() {
        assert_eq!(whole_numbers("1,8,32"), Ok(vec![1, 8, 32]));
        assert_eq!(whole_numbers("128-1024*2"), Ok(vec![128, 256, 512, 1024]));
        assert_eq!(whole_numbers("128-1000*2"), Ok(vec![128, 256, 512]));
        assert_eq!(whole_numbers("32-128+32"), Ok(vec![32, 64, 96, 128]));
        assert_eq!(whole_numbers("1-3, 8"), Ok(vec![1, 2, 3, 8]));
        assert_eq!(whole_numbers("5-5"), Ok(vec![5]));
        assert_eq!(whole_numbers("-1"), Ok(vec![-1]));
    }

    #[test]
    fn a_bad_list_or_range_names_its_element() {
        for (text, expected) in [
            ("1,,2", "an empty element"),
            ("1,", "an empty element"),
            ("1,x", "'x' is neither a whole number nor a range"),
            ("8-1", "'8-1': first is above last"),
            ("1-8+0", "the step must be at least 1"),
            ("0-8*2", "needs first >= 1 and mult >= 2"),
            ("1-8*1", "needs first >= 1 and mult >= 2"),
            ("1-a", "'1-a' is neither"),
            ("1-100000", "more than 1000 values"),
            ("1,2,1", "'1' comes twice"),
        ] {
            let why = whole_numbers(text).unwrap_err();
            assert!(why.contains(expected), "{text}: {why}");
        }
    }

    #[test]
    fn every_element_is_checked_against_the_knob_and_named_with_it() {
        assert_eq!(
            error(&[("batch_size", "1,0,32")]),
            "--set batch_size=1,0,32: the element 0 is out of range (expected a whole number >= 1)"
        );
        assert!(error(&[("seq_len", "4-64*2")]).contains(
            "--set seq_len=4-64*2: the element 4 is out of range (expected a whole number from 8 to 512)"
        ));
        assert!(error(&[("batch_size", "1,x")]).contains("--set batch_size=1,x: 'x' is neither"));
        assert!(
            error(&[("lr", "1e-3,0")]).contains("--set lr=1e-3,0: the element 0 is out of range")
        );
        assert!(error(&[("weights", "hub,cloud")])
            .contains("the element cloud is not one of the choices (expected hub | random)"));
        // A single value keeps the knob's own message.
        assert_eq!(
            error(&[("batch_size", "0")]),
            "--set batch_size=0: out of range (expected a whole number >= 1)"
        );
        assert!(error(&[("batchsize", "1,2")]).contains("did you mean 'batch_size'?"));
    }

    #[test]
    fn combinations_are_the_product_the_first_knob_slowest() {
        let cells = combinations(
            "bert",
            KNOBS,
            &pairs(&[
                ("batch_size", "1,4"),
                ("seq_len", "32-64*2"),
                ("lr", "1e-3"),
            ]),
        )
        .unwrap();
        let cells: Vec<Vec<(String, String)>> = cells;
        let expected = [
            [("batch_size", "1"), ("seq_len", "32"), ("lr", "1e-3")],
            [("batch_size", "1"), ("seq_len", "64"), ("lr", "1e-3")],
            [("batch_size", "4"), ("seq_len", "32"), ("lr", "1e-3")],
            [("batch_size", "4"), ("seq_len", "64"), ("lr", "1e-3")],
        ];
        let expected: Vec<_> = expected.iter().map(|cell| pairs(cell)).collect();
        assert_eq!(cells, expected);
        // No knob: one cell without knobs.
        assert_eq!(combinations("bert", KNOBS, &[]).unwrap(), vec![vec![]]);
    }

    #[test]
    fn single_values_and_texts_pass_whole() {
        let one = combinations("bert", KNOBS, &pairs(&[("lr", "5e-5")])).unwrap();
        assert_eq!(one, vec![pairs(&[("lr", "5e-5")])]);
        let prompt = "Hello, world - a test";
        let text = combinations("bert", KNOBS, &pairs(&[("prompt", prompt)])).unwrap();
        assert_eq!(text, vec![pairs(&[("prompt", prompt)])]);
        // The last of a key given twice wins, in the first one's place.
        let twice = pairs(&[("batch_size", "1,2"), ("lr", "1"), ("batch_size", "8")]);
        assert_eq!(
            combinations("bert", KNOBS, &twice).unwrap(),
            vec![pairs(&[("batch_size", "8"), ("lr", "1")])]
        );
    }

    #[test]
    fn too_many_combinations_are_refused() {
        let error = error(&[("batch_size", "1-100"), ("seq_len", "8-27")]);
        assert!(
            error.contains("more than 1000 combinations (batch_size: 100, seq_len: 20)"),
            "{error}"
        );
    }
}
