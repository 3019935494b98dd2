//! IAM's wildcards: `*` matches any run of characters (including none, and
//! across `:` and `/`), `?` matches exactly one character.

/// One piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Literal(String),
    /// `*`
    Any,
    /// `?`
    One,
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
    /// The common shapes, matched without the general loop.
    shape: Shape,
    /// Matching ignores ASCII case (actions); the literals are lowercased.
    ignore_case: bool,
}

impl Glob {
    /// Compiles `pattern`, where `*` and `?` are wildcards.
    pub fn new(pattern: &str, ignore_case: bool) -> Self {
        let mut tokens = Vec::new();
        let mut literal = String::new();
        for c in pattern.chars() {
            match c {
                '*' | '?' => {
                    if !literal.is_empty() {
                        tokens.push(Token::Literal(std::mem::take(&mut literal)));
                    }
                    // Consecutive stars are one star.
                    if !(c == '*' && tokens.last() == Some(&Token::Any)) {
                        tokens.push(if c == '*' { Token::Any } else { Token::One });
                    }
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        Self::from_tokens(tokens, ignore_case)
    }

    /// A pattern from tokens whose literals are literal whatever they hold
    /// (e.g. a substituted policy variable).
    pub fn from_tokens(mut tokens: Vec<Token>, ignore_case: bool) -> Self {
        // Join adjacent literals.
        let mut joined: Vec<Token> = Vec::with_capacity(tokens.len());
        for token in tokens.drain(..) {
            match (joined.last_mut(), token) {
                (Some(Token::Literal(previous)), Token::Literal(next)) => previous.push_str(&next),
                (Some(Token::Any), Token::Any) => {}
                (_, token) => joined.push(token),
            }
        }
        if ignore_case {
            for token in &mut joined {
                if let Token::Literal(text) = token {
                    text.make_ascii_lowercase();
                }
            }
        }
        let shape = Shape::of(&joined);
        Self { tokens: joined, shape, ignore_case }
    }

    /// Whether the pattern is `*` alone.
    pub fn is_any(&self) -> bool {
        self.shape == Shape::Any
    }

    /// Matches `text`. With `ignore_case`, `text` must already be lowercase
    /// ASCII where it matters (callers lowercase once per request).
    pub fn matches(&self, text: &str) -> bool {
        let text = text.as_bytes();
        match &self.shape {
            Shape::Exact(literal) => text == literal.as_bytes(),
            Shape::Prefix(prefix) => starts_with(text, prefix.as_bytes()),
            Shape::Suffix(suffix) => ends_with(text, suffix.as_bytes()),
            Shape::Around(prefix, suffix) => {
                text.len() >= prefix.len() + suffix.len()
                    && starts_with(text, prefix.as_bytes())
                    && ends_with(text, suffix.as_bytes())
            }
            Shape::Any => true,
            Shape::General => matches_tokens(&self.tokens, text),
        }
    }

    /// The compiled tokens.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// Whether matching ignores case.
    pub fn ignores_case(&self) -> bool {
        self.ignore_case
    }
}

/// Shapes that most policies use, with a direct test each.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// `abc` (or the empty pattern)
    Exact(String),
    /// `abc*`
    Prefix(String),
    /// `*abc`
    Suffix(String),
    /// `ab*c`
    Around(String, String),
    /// `*`
    Any,
    General,
}

impl Shape {
    fn of(tokens: &[Token]) -> Self {
        use Token::{Any, Literal};
        match tokens {
            [] => Self::Exact(String::new()),
            [Literal(l)] => Self::Exact(l.clone()),
            [Literal(l), Any] => Self::Prefix(l.clone()),
            [Any, Literal(l)] => Self::Suffix(l.clone()),
            [Literal(a), Any, Literal(b)] => Self::Around(a.clone(), b.clone()),
            [Any] => Self::Any,
            _ => Self::General,
        }
    }
}

/// `starts_with`, testing the first byte before calling memcmp: most
/// patterns fail there.
#[inline]
fn starts_with(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text.first() == prefix.first() && &text[..prefix.len()] == prefix
}

#[inline]
fn ends_with(text: &[u8], suffix: &[u8]) -> bool {
    text.len() >= suffix.len() && text.last() == suffix.last() && &text[text.len() - suffix.len()..] == suffix
}

/// The first position at or after `from` where `literal` occurs.
fn find(text: &[u8], from: usize, literal: &[u8]) -> Option<usize> {
    let (&first, _) = literal.split_first()?;
    let mut at = from;
    while at + literal.len() <= text.len() {
        let offset = text[at..=text.len() - literal.len()].iter().position(|&b| b == first)?;
        at += offset;
        if &text[at..at + literal.len()] == literal {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// Backtracking match over bytes, with `?` consuming one UTF-8 character.
/// Linear in practice: only the last `*` is ever returned to.
fn matches_tokens(tokens: &[Token], text: &[u8]) -> bool {
    let (mut t, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None; // (token after star, text position)
    loop {
        if p < tokens.len() {
            match &tokens[p] {
                Token::Literal(literal) => {
                    let literal = literal.as_bytes();
                    if text.len() - t >= literal.len() && &text[t..t + literal.len()] == literal {
                        t += literal.len();
                        p += 1;
                        continue;
                    }
                }
                Token::One => {
                    if t < text.len() {
                        t += utf8_len(text[t]);
                        p += 1;
                        continue;
                    }
                }
                Token::Any => {
                    p += 1;
                    if p == tokens.len() {
                        return true;
                    }
                    // Skip straight to where the next literal occurs.
                    if let Token::Literal(literal) = &tokens[p] {
                        match find(text, t, literal.as_bytes()) {
                            Some(at) => t = at,
                            None => return false,
                        }
                    }
                    star = Some((p, t));
                    continue;
                }
            }
        } else if t == text.len() {
            return true;
        }
        // Mismatch: let the last star take one more character.
        match star {
            Some((sp, st)) if st < text.len() => {
                let mut next = st + utf8_len(text[st]);
                if let Token::Literal(literal) = &tokens[sp] {
                    match find(text, next, literal.as_bytes()) {
                        Some(at) => next = at,
                        None => return false,
                    }
                }
                star = Some((sp, next));
                p = sp;
                t = next;
            }
            _ => return false,
        }
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// Matches `text` against `pattern` (with `*` and `?`) without compiling.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    Glob::new(pattern, false).matches(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_as_iam_has_them() {
        let cases = [
            ("*", "", true),
            ("*", "anything:at/all", true),
            ("a*", "a", true),
            ("a*c", "abc", true),
            ("a*c", "abcd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "aéc", true),
            ("*b*", "abc", true),
            ("*b*b", "abcb", true),
            ("*b*b", "abcbc", false),
            ("arn:pw:codepipeline:*:111122223333:web/*", "arn:pw:codepipeline:local:111122223333:web/Prod", true),
            ("arn:pw:codepipeline:*:111122223333:web/*", "arn:pw:codepipeline:local:111122223333:webapp", false),
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("", "", true),
            ("", "a", false),
            ("**a", "ba", true),
            ("a*a*a", "aaa", true),
            ("a*a*a", "aa", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(glob_match(pattern, text), expected, "{pattern:?} ~ {text:?}");
        }
    }

    #[test]
    fn case_is_ignored_only_when_asked() {
        assert!(Glob::new("CodePipeline:Get*", true).matches("codepipeline:getpipeline"));
        assert!(!Glob::new("CodePipeline:Get*", false).matches("codepipeline:getpipeline"));
    }

    #[test]
    fn substituted_text_is_literal() {
        let glob =
            Glob::from_tokens(vec![Token::Literal("home/".into()), Token::Literal("a*b".into()), Token::Any], false);
        assert!(glob.matches("home/a*b/x"));
        assert!(!glob.matches("home/aXb/x"));
    }
}
