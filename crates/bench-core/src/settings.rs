//! A row's settings: typed `key -> value` pairs, in the order they were
//! set, written as `key=value;key=value` in the CSV column `settings`.
//!
//! Encoding and decoding live here and nowhere else: a value's own `;` and
//! line breaks (a prompt, a transcript) become `,` and spaces so that the
//! pairs stay apart; a value may hold `=` (decoding splits at the first).

use std::collections::BTreeMap;
use std::fmt;

/// One setting's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(text) => f.write_str(text),
            Value::Int(n) => write!(f, "{n}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(text)
    }
}

impl From<&String> for Value {
    fn from(text: &String) -> Self {
        Value::Text(text.clone())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Float(x)
    }
}

impl From<f32> for Value {
    /// As f32 prints (0.1, not 0.10000000149011612 as a widened f64 would).
    fn from(x: f32) -> Self {
        Value::Float(x.to_string().parse().unwrap_or(x.into()))
    }
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Self {
                // Counts and sizes: far below i64's range.
                Value::Int(n as i64)
            }
        }
    )*};
}
int_value!(i32, i64, u32, u64, usize);

/// A row's settings, in order; a later pair with the same key wins when
/// read back ([`decode`]), as the runner applies them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings(Vec<(String, Value)>);

impl Settings {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key=value` (builder form).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.push(key, value);
        self
    }

    /// Adds `key=value`.
    pub fn push(&mut self, key: &str, value: impl Into<Value>) {
        self.0.push((key.to_owned(), value.into()));
    }

    /// Sets `key` where it stands (added at the end if new).
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, slot)) => *slot = value.into(),
            None => self.push(key, value),
        }
    }

    /// Adds every pair of `other`, after these.
    pub fn extend(&mut self, other: Settings) {
        self.0.extend(other.0);
    }

    /// The last value set for `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The CSV form, `key=value;...`.
    pub fn encode(&self) -> String {
        self.0
            .iter()
            .map(|(key, value)| {
                let value = value
                    .to_string()
                    .replace(';', ",")
                    .replace(['\n', '\r'], " ");
                format!("{key}={value}")
            })
            .collect::<Vec<_>>()
            .join(";")
    }
}

impl<K: AsRef<str>, V: Into<Value>> FromIterator<(K, V)> for Settings {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.as_ref().to_owned(), v.into()))
                .collect(),
        )
    }
}

/// The CSV form read back as `key -> value` (a repeated key: the last one
/// wins).
pub fn decode(encoded: &str) -> BTreeMap<String, String> {
    encoded
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_pairs_apart_and_read_back() {
        let settings = Settings::new()
            .with("prompt", "Hi; a=b\nnext")
            .with("n", 3usize)
            .with("lr", 0.0003)
            .with("fused", true)
            .with("n", 4usize);
        let encoded = settings.encode();
        assert_eq!(encoded, "prompt=Hi, a=b next;n=3;lr=0.0003;fused=true;n=4");
        let back = decode(&encoded);
        assert_eq!(back["prompt"], "Hi, a=b next");
        assert_eq!(back["n"], "4");
        assert_eq!(back["lr"], "0.0003");
        assert_eq!(settings.get("n"), Some(&Value::Int(4)));
        assert_eq!(settings.get("missing"), None);
        let mut replaced = Settings::new().with("model", "a").with("n", 1);
        replaced.set("model", "b");
        replaced.set("new", 2);
        assert_eq!(replaced.encode(), "model=b;n=1;new=2");
    }

    #[test]
    fn integers_and_floats_print_as_rust_prints_them() {
        let settings: Settings = [
            ("a", Value::from(2048usize)),
            ("b", Value::from(1e-5)),
            ("c", Value::from(0.1f32)),
        ]
        .into_iter()
        .collect();
        assert_eq!(settings.encode(), "a=2048;b=0.00001;c=0.1");
    }
}
