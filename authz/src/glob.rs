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
    /// The pattern is one literal: compare for equality.
    exact: bool,
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
        let exact = joined.len() <= 1 && joined.iter().all(|t| matches!(t, Token::Literal(_)));
        Self { tokens: joined, exact, ignore_case }
    }

    /// Whether the pattern is `*` alone.
    pub fn is_any(&self) -> bool {
        self.tokens == [Token::Any]
    }

    /// Matches `text`. With `ignore_case`, `text` must already be lowercase
    /// ASCII where it matters (callers lowercase once per request).
    pub fn matches(&self, text: &str) -> bool {
        if self.exact {
            return match self.tokens.first() {
                Some(Token::Literal(literal)) => literal.as_str() == text,
                _ => text.is_empty(),
            };
        }
        matches_tokens(&self.tokens, text.as_bytes())
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
                let next = st + utf8_len(text[st]);
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
