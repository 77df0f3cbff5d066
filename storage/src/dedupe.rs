//! Event-id deduplication: a producer that resends an event (a retry after
//! a timeout, a replay) must not have it stored twice. The key is
//! (tenant, source, id), hashed to 128 bits; the index holds the keys of the
//! events stored with an event time inside the window (by default the
//! decoder's `ingest.max_past`, so that every event the decoder accepts can
//! be matched against its earlier copy), each with the UTC day of its time
//! so that whole days fall out as the window moves. A resend is a duplicate
//! whatever `time` it carries: the lookup is by key alone. Memory grows with
//! the events of the window, never with the history.
//!
//! The index is rebuilt from the committed `events` files of the topic at
//! start, and catches up on records other writers committed whenever
//! [`DedupeIndex::refresh`] is called (on every partition assignment).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};

use crate::{CommitRecord, Storage, StorageError};

/// The 128-bit key of one event.
pub type EventKey = u128;

/// The hasher of maps and sets of event keys. The keys are SHA-256 bits
/// already, so a fast non-cryptographic hash spreads them as well as SipHash
/// would, at a fraction of its cost.
pub type KeyHasher = foldhash::fast::RandomState;

/// A set of event keys (the keys of open batches).
pub type KeySet = HashSet<EventKey, KeyHasher>;

/// A key as the index holds it: four 32-bit words, so that a key and its
/// day take 20 bytes (a `u128` is 16-byte aligned and pads them to 32).
type Slot = [u32; 4];

/// The index is split by the key's top bits into this many maps, so that
/// growing one copies a 64th of the keys: a single map of millions of keys
/// holds its old and its new table at once while it grows (half as much
/// memory again, at the moment memory is highest).
const SHARDS: usize = 64;

/// One shard of the index.
type Shard = HashMap<Slot, NaiveDate, KeyHasher>;

/// The shard of a key (its top six bits; the keys are uniform).
fn shard_of(key: EventKey) -> usize {
    (key >> 122) as usize
}

fn slot(key: EventKey) -> Slot {
    [
        key as u32,
        (key >> 32) as u32,
        (key >> 64) as u32,
        (key >> 96) as u32,
    ]
}

/// The key of (tenant, source, id). Fields are length-prefixed, so no two
/// different triples share an encoding.
pub fn event_key(tenant: &str, source: &str, id: &str) -> EventKey {
    let mut h = Sha256::new();
    for part in [tenant, source, id] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    u128::from_le_bytes(b)
}

/// The keys of the events stored with an event time inside the window.
#[derive(Debug)]
pub struct DedupeIndex {
    window: chrono::Duration,
    /// Each key with the latest UTC day an event of that key was stored for.
    keys: Vec<Shard>,
    /// The horizon of the last eviction (nothing older is held).
    evicted_to: Option<NaiveDate>,
    /// The last commit record indexed, per partition of the topic.
    indexed: HashMap<i32, u64>,
    topic: String,
}

impl DedupeIndex {
    /// An empty index for `topic` that keeps `window` of event time.
    pub fn new(topic: &str, window: Duration) -> Self {
        Self {
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX),
            keys: (0..SHARDS).map(|_| Shard::default()).collect(),
            evicted_to: None,
            indexed: HashMap::new(),
            topic: topic.to_string(),
        }
    }

    /// The first UTC day the window covers at `now`.
    fn horizon(&self, now: DateTime<Utc>) -> NaiveDate {
        now.checked_sub_signed(self.window)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
            .date_naive()
    }

    /// Whether an event with this key was stored (with any event time in
    /// the window).
    pub fn contains(&self, key: EventKey) -> bool {
        self.keys[shard_of(key)].contains_key(&slot(key))
    }

    /// Records a stored event (ignored when its day is outside the window).
    pub fn insert(&mut self, key: EventKey, time: DateTime<Utc>) {
        self.insert_all([(key, time)]);
    }

    /// Records stored events (each ignored when its day is outside the
    /// window), reading the clock once.
    pub fn insert_all(&mut self, events: impl IntoIterator<Item = (EventKey, DateTime<Utc>)>) {
        let horizon = self.horizon(Utc::now());
        for (key, time) in events {
            let day = time.date_naive();
            if day >= horizon {
                let held = self.keys[shard_of(key)].entry(slot(key)).or_insert(day);
                *held = (*held).max(day);
            }
        }
    }

    /// Drops the keys whose day left the window (a pass over the index
    /// only when the horizon moved to a new day).
    pub fn evict(&mut self, now: DateTime<Utc>) {
        let horizon = self.horizon(now);
        if self.evicted_to.is_some_and(|h| h >= horizon) {
            return;
        }
        for shard in &mut self.keys {
            shard.retain(|_, day| *day >= horizon);
        }
        self.evicted_to = Some(horizon);
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.keys.iter().map(HashMap::len).sum()
    }

    /// Whether the index holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.iter().all(HashMap::is_empty)
    }

    /// Marks a record this writer committed (its keys were inserted by the
    /// caller) as indexed.
    pub fn committed(&mut self, record: &CommitRecord) {
        let seq = self.indexed.entry(record.partition).or_insert(0);
        *seq = (*seq).max(record.seq);
    }

    /// Reads the commit records of the topic not indexed yet (all of them
    /// the first time) and indexes the keys of their `events` files whose
    /// day lies inside the window. Returns the keys added.
    pub async fn refresh(&mut self, storage: &Storage) -> Result<usize, StorageError> {
        self.evict(Utc::now());
        let horizon = self.horizon(Utc::now());
        let before = self.len();
        for partition in storage.partitions(&self.topic).await? {
            let after = self.indexed.get(&partition).copied().unwrap_or(0);
            for record in storage.records_after(&self.topic, partition, after).await? {
                for f in record.files.iter().filter(|f| f.table == "events") {
                    if file_day(&f.path).is_some_and(|d| d < horizon) {
                        continue;
                    }
                    // Published, or still in its writer's staging; a file
                    // in neither is lost, and an index without its keys
                    // would store its resends again: that is an error.
                    self.insert_all(storage.committed_event_keys(&record, &f.path).await?);
                }
                self.committed(&record);
            }
        }
        Ok(self.len().saturating_sub(before))
    }
}

/// The `dt=` day of a table file's path.
fn file_day(path: &str) -> Option<NaiveDate> {
    path.split('/')
        .find_map(|p| p.strip_prefix("dt="))
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_when_fields_shift() {
        assert_ne!(event_key("ab", "c", "d"), event_key("a", "bc", "d"));
        assert_eq!(event_key("a", "b", "c"), event_key("a", "b", "c"));
    }

    #[test]
    fn days_leave_the_window() {
        let mut idx = DedupeIndex::new("t", Duration::from_secs(2 * 86_400));
        let now = Utc::now();
        let old = now - chrono::Duration::days(5);
        idx.keys[shard_of(1)].insert(slot(1), old.date_naive());
        idx.insert(2, now);
        idx.insert(3, old); // outside the window: ignored
        assert!(idx.contains(1));
        assert!(idx.contains(2));
        assert!(!idx.contains(3));
        idx.evict(now);
        assert!(!idx.contains(1));
        assert!(idx.contains(2));
        assert_eq!(idx.len(), 1);
    }

    #[test]
    fn keys_of_every_shard_are_held_counted_and_evicted() {
        let mut idx = DedupeIndex::new("t", Duration::from_secs(2 * 86_400));
        let now = Utc::now();
        let keys: Vec<EventKey> = (0..SHARDS as u128).map(|s| (s << 122) | 7).collect();
        idx.insert_all(keys.iter().map(|k| (*k, now)));
        idx.insert(u128::MAX, now - chrono::Duration::days(1));
        assert_eq!(idx.len(), SHARDS + 1);
        assert!(keys.iter().all(|k| idx.contains(*k)));
        assert!(!idx.contains(8), "same shard as key 7, another key");
        idx.evict(now + chrono::Duration::days(2));
        assert_eq!(idx.len(), SHARDS, "the older day left the window");
        assert!(!idx.contains(u128::MAX));
        assert!(!idx.is_empty());
    }

    #[test]
    fn a_resend_with_another_time_is_still_a_duplicate() {
        let mut idx = DedupeIndex::new("t", Duration::from_secs(10 * 86_400));
        let now = Utc::now();
        let key = event_key("acme", "https://gw.example", "e-1");
        idx.insert(key, now - chrono::Duration::days(3));
        assert!(idx.contains(key), "same id, any time");
        // A later copy keeps the key for longer.
        idx.insert(key, now);
        idx.evict(now + chrono::Duration::days(8));
        assert!(idx.contains(key));
    }

    #[test]
    fn file_days_are_read_from_paths() {
        assert_eq!(
            file_day("tables/events/dt=2026-11-03/p00001-1-2.parquet"),
            NaiveDate::from_ymd_opt(2026, 11, 3)
        );
        assert_eq!(file_day("tables/events/x.parquet"), None);
    }
}
