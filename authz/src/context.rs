//! The request context: condition keys and their values, as a request (or
//! the simulator's input) gives them. Keys are case-insensitive, and every
//! global key may be written `pw:…` or `aws:…`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A context value: one string, or a set of strings (multivalued keys such as
/// `pw:TagKeys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextValue {
    Single(String),
    Multi(Vec<String>),
}

impl ContextValue {
    pub fn values(&self) -> &[String] {
        match self {
            Self::Single(value) => std::slice::from_ref(value),
            Self::Multi(values) => values,
        }
    }

    /// The value usable as a policy variable: single-valued only.
    pub fn single(&self) -> Option<&str> {
        match self {
            Self::Single(value) => Some(value),
            Self::Multi(_) => None,
        }
    }
}

impl From<&str> for ContextValue {
    fn from(value: &str) -> Self {
        Self::Single(value.to_owned())
    }
}

impl From<String> for ContextValue {
    fn from(value: String) -> Self {
        Self::Single(value)
    }
}

impl From<Vec<String>> for ContextValue {
    fn from(values: Vec<String>) -> Self {
        Self::Multi(values)
    }
}

/// The condition keys of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    values: HashMap<String, ContextValue, BuildHasherDefault<KeyHasher>>,
}

/// FNV-1a: context keys are short, few and not chosen to collide, so a
/// DoS-resistant hash would only cost time on every condition.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

impl Context {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` (any case, `pw:` or `aws:`).
    pub fn insert(&mut self, key: &str, value: impl Into<ContextValue>) -> &mut Self {
        self.values.insert(normalize_key(key), value.into());
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<ContextValue>) -> Self {
        self.insert(key, value);
        self
    }

    /// The value of a key already normalized by [`normalize_key`].
    pub fn get_normalized(&self, key: &str) -> Option<&ContextValue> {
        self.values.get(key)
    }

    /// The value of `key` (any case or prefix spelling).
    pub fn get(&self, key: &str) -> Option<&ContextValue> {
        self.values.get(&normalize_key(key))
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Lowercases a key and spells `aws:` as `pw:`.
pub fn normalize_key(key: &str) -> String {
    let lower = key.trim().to_ascii_lowercase();
    match lower.strip_prefix("aws:") {
        Some(rest) => format!("pw:{rest}"),
        None => lower,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_case_insensitive_and_aws_is_pw() {
        let context = Context::new().with("aws:SourceIp", "203.0.113.7").with("pw:ResourceTag/Team", "blue");
        assert_eq!(context.get("pw:sourceip"), Some(&ContextValue::from("203.0.113.7")));
        assert_eq!(context.get("AWS:SOURCEIP"), Some(&ContextValue::from("203.0.113.7")));
        assert_eq!(context.get("aws:resourcetag/team"), Some(&ContextValue::from("blue")));
        assert_eq!(context.get("sts:ExternalId"), None);
    }
}
