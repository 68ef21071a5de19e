//! A row's settings: typed `key -> value` pairs as a benchmark sets them
//! ([`Settings`]), and the text pairs a row holds ([`Pairs`]), in the order
//! they were set: a JSON object in the JSONL record, `key=value;key=value`
//! in the CSV export.
//!
//! Encoding and decoding live here and nowhere else: a value's own `;` and
//! line breaks (a prompt, a transcript) become `,` and spaces so that the
//! pairs stay apart; a value may hold `=` (decoding splits at the first).

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
        Pairs::from(self).encode()
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

/// A row's settings as text, in the order they were set. A key may come
/// twice (a twin's own figure after the cell's): the last one wins when
/// read, and both stay, so that a row reads back exactly as it was written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pairs(Vec<(String, String)>);

impl Pairs {
    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn push(&mut self, key: &str, value: &str) {
        self.0.push((key.to_owned(), clean(value)));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The CSV form, `key=value;...`.
    pub fn encode(&self) -> String {
        self.iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// The CSV form read back, in order.
    pub fn decode(encoded: &str) -> Self {
        Self(
            encoded
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect(),
        )
    }
}

/// A value as a pair holds it: no `;` or line break of its own.
fn clean(value: &str) -> String {
    value.replace(';', ",").replace(['\n', '\r'], " ")
}

impl From<&Settings> for Pairs {
    fn from(settings: &Settings) -> Self {
        Self(
            settings
                .iter()
                .map(|(key, value)| (key.to_owned(), clean(&value.to_string())))
                .collect(),
        )
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Pairs {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.as_ref().to_owned(), clean(v.as_ref())))
                .collect(),
        )
    }
}

/// A JSON object, in order, repeated keys kept.
impl Serialize for Pairs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of settings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(Pairs(pairs))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

/// The setting in which a training twin lists every step's loss, warm-up
/// included, when its `record_losses` knob asks (the GPU self-test's).
pub const LOSSES: &str = "losses";

/// Losses as [`LOSSES`] holds them: each as Rust prints an f32 (the
/// shortest text that reads back as the same value), space-separated.
pub fn losses_text(losses: &[f32]) -> String {
    let texts: Vec<String> = losses.iter().map(f32::to_string).collect();
    texts.join(" ")
}

/// The losses of a [`LOSSES`] text, exactly as they were written.
pub fn parse_losses(text: &str) -> Result<Vec<f32>, std::num::ParseFloatError> {
    text.split(' ').map(str::parse).collect()
}

/// The losses that `settings` record under [`LOSSES`], where they do.
pub fn recorded_losses(settings: &Settings) -> Option<Result<Vec<f32>, std::num::ParseFloatError>> {
    Pairs::from(settings).get(LOSSES).map(parse_losses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_read_back_bit_for_bit() {
        let losses = [1.234_567_9_f32, 0.1 + 0.2, f32::MIN_POSITIVE];
        let back = parse_losses(&losses_text(&losses)).unwrap();
        let bits = |xs: &[f32]| xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&losses));
        assert!(parse_losses("1.5 x").is_err());
    }

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
        let back = Pairs::decode(&encoded);
        assert_eq!(back.get("prompt"), Some("Hi, a=b next"));
        assert_eq!(back.get("n"), Some("4"));
        assert_eq!(back.get("lr"), Some("0.0003"));
        assert_eq!(back.encode(), encoded, "read back as written");
        assert_eq!(settings.get("n"), Some(&Value::Int(4)));
        assert_eq!(settings.get("missing"), None);
        let mut replaced = Settings::new().with("model", "a").with("n", 1);
        replaced.set("model", "b");
        replaced.set("new", 2);
        assert_eq!(replaced.encode(), "model=b;n=1;new=2");
    }

    #[test]
    fn pairs_are_a_json_object_in_order_with_repeated_keys_kept() {
        let pairs = Pairs::decode("z=1;a=2;z=3");
        let json = serde_json::to_string(&pairs).unwrap();
        assert_eq!(json, r#"{"z":"1","a":"2","z":"3"}"#);
        let back: Pairs = serde_json::from_str(&json).unwrap();
        assert_eq!(back, pairs);
        assert_eq!(back.get("z"), Some("3"));
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
