//! Policy variables (`${pw:username}`, `${pw:ResourceTag/team, 'none'}`, and
//! the escapes `${*}`, `${?}`, `${$}`), substituted from the request context
//! in policies of version 2012-10-17. Substituted text is literal: a `*` in a
//! user name is not a wildcard.

use crate::context::{Context, normalize_key};
use crate::glob::{Glob, Token};

/// A policy string cut into text and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Policy text: `*` and `?` in it are wildcards where the element has them.
    Text(String),
    /// A literal character from an escape (`${*}`).
    Escaped(char),
    Variable {
        key: String,
        default: Option<String>,
    },
}

impl Template {
    /// Reads `${…}` in `source` when `variables` is on (version 2012-10-17);
    /// otherwise, and for malformed `${`, the text is taken as it is.
    pub fn parse(source: &str, variables: bool) -> Self {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        while variables && let Some(start) = rest.find("${") {
            let Some(length) = rest[start + 2..].find('}') else {
                break;
            };
            text.push_str(&rest[..start]);
            let inner = rest[start + 2..start + 2 + length].trim();
            let part = match inner {
                "*" => Part::Escaped('*'),
                "?" => Part::Escaped('?'),
                "$" => Part::Escaped('$'),
                _ => match inner.split_once(',') {
                    Some((key, default)) => {
                        let default = default.trim();
                        let quoted = default.len() >= 2 && default.starts_with('\'') && default.ends_with('\'');
                        Part::Variable {
                            key: normalize_key(key),
                            default: Some(if quoted { &default[1..default.len() - 1] } else { default }.to_owned()),
                        }
                    }
                    None => Part::Variable { key: normalize_key(inner), default: None },
                },
            };
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(part);
            rest = &rest[start + 2 + length + 1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Self { parts }
    }

    /// An ARN pattern: variables are substituted only in the resource part,
    /// after the fifth colon, as IAM does; before it `${…}` is plain text.
    pub fn parse_arn(source: &str, variables: bool) -> Self {
        let split = source.match_indices(':').nth(4).map_or(source.len(), |(i, _)| i + 1);
        let (head, tail) = source.split_at(split);
        let mut template = Self::parse(head, false);
        template.parts.extend(Self::parse(tail, variables).parts);
        template
    }

    /// Whether the string has variables or escapes to substitute.
    pub fn is_plain(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The string with variables substituted; `None` when a variable has no
    /// single value in the context and no default.
    pub fn render(&self, context: &Context) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Escaped(c) => out.push(*c),
                Part::Variable { key, default } => out.push_str(lookup(context, key, default.as_deref())?),
            }
        }
        Some(out)
    }

    /// A wildcard pattern: `*` and `?` in policy text are wildcards, while
    /// escapes and substituted values are literal.
    pub fn glob(&self, context: &Context, ignore_case: bool) -> Option<Glob> {
        let mut tokens = Vec::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => tokens.extend(Glob::new(text, false).tokens().iter().cloned()),
                Part::Escaped(c) => tokens.push(Token::Literal(c.to_string())),
                Part::Variable { key, default } => {
                    tokens.push(Token::Literal(lookup(context, key, default.as_deref())?.to_owned()))
                }
            }
        }
        Some(Glob::from_tokens(tokens, ignore_case))
    }
}

fn lookup<'a>(context: &'a Context, key: &str, default: Option<&'a str>) -> Option<&'a str> {
    match context.get_normalized(key).and_then(|v| v.single()) {
        Some(value) => Some(value),
        None => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context {
        Context::new().with("pw:username", "al*ce").with("pw:TagKeys", vec!["a".to_owned()])
    }

    #[test]
    fn variables_are_substituted_in_2012_only() {
        let t = Template::parse("home/${pw:username}/*", true);
        assert_eq!(t.render(&context()).as_deref(), Some("home/al*ce/*"));
        let old = Template::parse("home/${pw:username}/*", false);
        assert_eq!(old.render(&context()).as_deref(), Some("home/${pw:username}/*"));
    }

    #[test]
    fn substituted_values_and_escapes_are_literal() {
        let glob = Template::parse("home/${aws:username}/${*}x", true).glob(&context(), false).expect("resolves");
        assert!(glob.matches("home/al*ce/*x"));
        assert!(!glob.matches("home/alice/*x"));
        assert!(!glob.matches("home/al*ce/yx"));
    }

    #[test]
    fn absent_and_multivalued_keys_fall_back_to_the_default_or_fail() {
        assert_eq!(Template::parse("${pw:userid}", true).render(&context()), None);
        assert_eq!(Template::parse("${pw:userid, 'nobody'}", true).render(&context()).as_deref(), Some("nobody"));
        assert_eq!(Template::parse("${pw:TagKeys}", true).render(&context()), None);
        assert_eq!(Template::parse("a${$}b${?}", true).render(&context()).as_deref(), Some("a$b?"));
        assert_eq!(Template::parse("a${unclosed", true).render(&context()).as_deref(), Some("a${unclosed"));
    }
}
