//! Signed-out sessions, as every api process knows them: Redis keeps each
//! (`revoked:<session>`, for as long as a token of it could live) and
//! announces it on a channel; each process keeps the set in memory from
//! the announcements, so that checking a token costs no round trip. While
//! its subscription is not live (starting, Redis away), a process asks Redis
//! for each token instead. Decision 017.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pipewright_core::cache::Cache;
use uuid::Uuid;

/// How often a heartbeat goes through the subscription.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// The signed-out sessions this process knows of, until their keys expire.
#[derive(Clone, Default)]
pub struct Revocations {
    known: Arc<Mutex<HashMap<Uuid, Instant>>>,
    /// The subscription is up and the set was loaded after it began.
    live: Arc<AtomicBool>,
}

impl Revocations {
    /// Whether the set can answer alone.
    pub fn live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Whether `session` is known signed out (meaningful when [`live`]).
    pub fn contains(&self, session: Uuid) -> bool {
        let known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        known.get(&session).is_some_and(|until| Instant::now() < *until)
    }

    /// Records `session` signed out for `seconds`.
    pub fn insert(&self, session: Uuid, seconds: u64) {
        // Two days at most: no token outlives its session by more.
        let until = Instant::now() + Duration::from_secs(seconds.clamp(1, 2 * 86_400));
        let mut known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.len() > 10_000 {
            let now = Instant::now();
            known.retain(|_, until| now < *until);
        }
        known.insert(session, until);
    }

    /// The channel announcements go on.
    pub fn channel(cache: &Cache) -> String {
        cache.key("revocations")
    }

    /// Follows the announcements for as long as the process runs: subscribes,
    /// loads what Redis holds, then takes each announcement; goes back to
    /// asking Redis per token whenever the subscription drops.
    pub fn follow(&self, cache: Cache) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = this.follow_once(&cache).await {
                    tracing::debug!(error = %e, "the revocation announcements are not followed now; tokens are checked in Redis");
                }
                this.live.store(false, Ordering::Release);
                pipewright_core::metrics::get().revocations_followed.set(0);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    async fn follow_once(&self, cache: &Cache) -> Result<(), String> {
        let pubsub = cache.subscribe(&Self::channel(cache)).await.map_err(|e| e.to_string())?;
        // Subscribed first, then loaded: a session signed out in between is
        // in one or the other.
        let pattern = format!("{}*", glob_escape(&cache.key("revoked:")));
        let prefix = cache.key("revoked:");
        let mut conn = cache.conn();
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            if !keys.is_empty() {
                let mut pipe = redis::pipe();
                for key in &keys {
                    pipe.cmd("TTL").arg(key);
                }
                let ttls: Vec<i64> = pipe.query_async(&mut conn).await.map_err(|e| e.to_string())?;
                for (key, ttl) in keys.iter().zip(ttls) {
                    if let Some(session) = key.strip_prefix(&prefix).and_then(|id| Uuid::parse_str(id).ok())
                        && ttl > 0
                    {
                        self.insert(session, u64::try_from(ttl).unwrap_or(1));
                    }
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        self.live.store(true, Ordering::Release);
        pipewright_core::metrics::get().revocations_followed.set(1);
        let mut messages = pubsub.into_on_message();
        // A subscription can die without a word (a connection half open):
        // a heartbeat goes through it every 2 s, and 6 s without any
        // message end it (the process then asks Redis per token until it
        // has subscribed again).
        let channel = Self::channel(cache);
        let mut beat = tokio::time::interval(HEARTBEAT);
        let mut heard = Instant::now();
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else { return Err("the subscription ended".to_owned()) };
                    heard = Instant::now();
                    let Ok(text) = message.get_payload::<String>() else { continue };
                    let Some((id, seconds)) = text.split_once(' ') else { continue };
                    if let (Ok(session), Ok(seconds)) = (Uuid::parse_str(id), seconds.parse::<u64>()) {
                        self.insert(session, seconds);
                    }
                }
                _ = beat.tick() => {
                    if heard.elapsed() > 3 * HEARTBEAT {
                        return Err("no heartbeat through the subscription".to_owned());
                    }
                    let _ = cache.query::<i64>(redis::cmd("PUBLISH").arg(&channel).arg("heartbeat")).await;
                }
            }
        }
    }
}

/// `text` with Redis's glob characters escaped, for a MATCH pattern.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '*' | '?' | '[' | ']' | '^') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_prefix_with_glob_characters_is_matched_literally() {
        assert_eq!(super::glob_escape("pw[prod]:revoked:"), r"pw\[prod\]:revoked:");
        assert_eq!(super::glob_escape("pw:revoked:"), "pw:revoked:");
    }
}
