//! Pagination: `maxResults` (1–1000, default 100) and an opaque `nextToken`
//! that carries where the previous page stopped.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::IamError;

/// The one format of every list's `nextToken`: base64url of `pw1:` and the
/// sort key where the page stopped.
pub fn token(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("pw1:{key}"))
}

/// The sort key a [`token`] carries, or `None` for a token this service did
/// not give.
pub fn key_of(token: &str) -> Option<String> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|t| t.strip_prefix("pw1:").map(str::to_owned))
        // No name or time holds a control character (PostgreSQL refuses NUL).
        .filter(|key| !key.chars().any(char::is_control))
}

pub const DEFAULT_MAX_RESULTS: i64 = 100;
pub const MAX_MAX_RESULTS: i64 = 1000;

/// A page request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    /// The sort key after which the page starts.
    pub after: Option<String>,
}

impl Page {
    pub fn new(max_results: Option<i64>, next_token: Option<&str>) -> Result<Self, IamError> {
        let limit = max_results.unwrap_or(DEFAULT_MAX_RESULTS);
        if !(1..=MAX_MAX_RESULTS).contains(&limit) {
            return Err(IamError::InvalidInput(format!(
                "maxResults must be between 1 and {MAX_MAX_RESULTS}, not {limit}"
            )));
        }
        let after = match next_token {
            None | Some("") => None,
            Some(token) => Some(
                key_of(token)
                    .ok_or_else(|| IamError::InvalidInput("nextToken is not one this service gave".to_owned()))?,
            ),
        };
        Ok(Self { limit, after })
    }

    /// Cuts `items` (fetched with `limit + 1`) to the page, and the token of
    /// the next page when there is one.
    pub fn finish<T>(&self, mut items: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        if items.len() <= limit {
            return (items, None);
        }
        items.truncate(limit);
        let next = items.last().map(|last| token(&key(last)));
        (items, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        let page = Page::new(Some(2), None).expect("valid");
        let (items, token) = page.finish(vec!["a", "b", "c"], |s| (*s).to_owned());
        assert_eq!(items, ["a", "b"]);
        let next = Page::new(Some(2), token.as_deref()).expect("our token");
        assert_eq!(next.after.as_deref(), Some("b"));
        assert!(Page::new(Some(0), None).is_err());
        assert!(Page::new(Some(1001), None).is_err());
        assert!(Page::new(None, Some("garbage!")).is_err());
        assert_eq!(Page::new(None, None).expect("defaults").limit, 100);
        // A token made by hand to carry a NUL (which PostgreSQL refuses with
        // an error, a 500) is not one of ours.
        let forged = URL_SAFE_NO_PAD.encode("pw1:2024-01-01T00:00:00Z|\0");
        assert!(Page::new(None, Some(&forged)).is_err());
        assert_eq!(key_of(&forged), None);
    }
}
