//! Bounded in-memory guards: token buckets (per SCIM token, and per client
//! address for failed authentication) and the token → account cache.
use std::{collections::HashMap, hash::Hash, sync::Mutex, time::Duration};

use crate::db::entities::{account, scim_token};

/// Token buckets keyed by `K`, holding at most `max_keys` keys: when full,
/// the least recently used key is dropped (a full bucket loses nothing).
pub struct Buckets<K> {
    per_second: f64,
    burst: f64,
    max_keys: usize,
    state: Mutex<HashMap<K, (f64, i64)>>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    pub fn new(per_second: f64, burst: f64, max_keys: usize) -> Self {
        Self {
            per_second,
            burst,
            max_keys,
            state: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, level: f64, last: i64, now: i64) -> f64 {
        let elapsed = (now - last).max(0) as f64 / 1e6;
        (level + elapsed * self.per_second).min(self.burst)
    }

    /// Takes one token, or says how long until one is available.
    pub fn take(&self, key: &K, now: i64) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let level = match state.get(key) {
            Some(&(level, last)) => self.refill(level, last, now),
            None => {
                if state.len() >= self.max_keys {
                    evict_oldest(&mut state);
                }
                self.burst
            }
        };
        if level >= 1.0 {
            state.insert(key.clone(), (level - 1.0, now));
            Ok(())
        } else {
            state.insert(key.clone(), (level, now));
            Err(self.wait(level))
        }
    }

    /// Whether a token is available, without taking it.
    pub fn check(&self, key: &K, now: i64) -> Result<(), Duration> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.get(key) {
            Some(&(level, last)) => {
                let level = self.refill(level, last, now);
                if level >= 1.0 {
                    Ok(())
                } else {
                    Err(self.wait(level))
                }
            }
            None => Ok(()),
        }
    }

    fn wait(&self, level: f64) -> Duration {
        let seconds = if self.per_second > 0.0 {
            (1.0 - level) / self.per_second
        } else {
            60.0
        };
        Duration::from_secs_f64(seconds.clamp(0.001, 3600.0))
    }

    pub fn len(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn evict_oldest<K: Hash + Eq + Clone>(state: &mut HashMap<K, (f64, i64)>) {
    if let Some(oldest) = state
        .iter()
        .min_by_key(|(_, (_, last))| *last)
        .map(|(k, _)| k.clone())
    {
        state.remove(&oldest);
    }
}

/// A token and its account, as authentication last read them.
#[derive(Clone)]
pub struct CachedToken {
    pub token: scim_token::Model,
    pub account: account::Model,
    fetched_at: i64,
}

/// Token hash → token and account, so authentication does not read the
/// database on every request. Changes made by this process (revoke, rotate,
/// SCIM switch) clear it at once; changes made by another replica show within
/// [`TokenCache::ttl`].
pub struct TokenCache {
    ttl_micros: i64,
    max_entries: usize,
    entries: Mutex<HashMap<String, CachedToken>>,
}

impl TokenCache {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            ttl_micros: i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX),
            max_entries,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        Duration::from_micros(u64::try_from(self.ttl_micros).unwrap_or(0))
    }

    pub fn get(&self, hash: &str, now: i64) -> Option<CachedToken> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(hash)
            .filter(|c| now.saturating_sub(c.fetched_at) < self.ttl_micros && c.fetched_at <= now)
            .cloned()
    }

    pub fn insert(
        &self,
        hash: String,
        token: scim_token::Model,
        account: account::Model,
        now: i64,
    ) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.max_entries {
            entries.clear();
        }
        entries.insert(
            hash,
            CachedToken {
                token,
                account,
                fetched_at: now,
            },
        );
    }

    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_with_time() {
        let b = Buckets::new(1.0, 2.0, 10);
        assert!(b.take(&"k", 0).is_ok());
        assert!(b.take(&"k", 0).is_ok());
        let wait = b.take(&"k", 0).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        assert!(b.take(&"k", 1_000_000).is_ok());
        assert!(b.take(&"other", 0).is_ok(), "keys are independent");
    }

    #[test]
    fn buckets_stay_bounded() {
        let b = Buckets::new(1.0, 1.0, 100);
        for i in 0..10_000 {
            let _ = b.take(&i, i64::from(i));
        }
        assert_eq!(b.len(), 100);
    }
}
