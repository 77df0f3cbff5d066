//! Hourly rollups: the facets of every UTC hour (per tenant and team, in
//! total and per user, environment, workload kind, GPU model, workload,
//! tool and model), priced, stored as Parquet under
//! `ledger/rollups/hourly/dt=YYYY-MM-DD/`, so that a monthly report reads a
//! few hundred thousand rows instead of every raw event.
//!
//! They are maintained incrementally from the commit log: a manifest
//! (`ledger/rollups/manifests/<version>.json`, created with the same
//! create-if-absent put as commit records, so two writers cannot both
//! publish a version) names the rollup files and, per topic and partition,
//! the last commit record they cover. A refresh rolls up only the records
//! after that, from exactly the files those records list. The raw log stays
//! the truth: [`rebuild`] recomputes every rollup from it.
//!
//! Manifests are verifiable: each lists its files' SHA-256, size and rows,
//! and carries the SHA-256 of the previous version's manifest, so the
//! versions form a chain. Reports check every file they read against the
//! manifest ([`check_file`]) and refuse an altered one; [`verify`] walks the
//! chain and checks the current version's files.

mod build;
mod verify;

pub use verify::{check_file, check_files, verify};

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tollgate_storage::{sha256_hex, CommitRecord};

use crate::{Error, LedgerContext, PriceBook};

/// Where manifests live.
const MANIFESTS: &str = "ledger/rollups/manifests/";
/// Where rollup files live.
const FILES: &str = "ledger/rollups/hourly";
/// A day with more rollup files than this is compacted into one.
const COMPACT_AT: usize = 8;
/// The manifest format written now: 2 adds the files' SHA-256 and size and
/// the previous manifest's SHA-256. Rollups of an older format are rebuilt
/// by the next refresh.
pub const FORMAT: u32 = 2;

/// The rollups' Arrow schema (plus `dt` in the path).
pub fn schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("hour", ts.clone(), false),
        Field::new("tenant", DataType::Utf8, false),
        Field::new("team", DataType::Utf8, false),
        Field::new("dimension", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, true),
        Field::new("cost", DataType::Decimal128(38, 18), true),
        Field::new("gpu_millis", DataType::Int64, false),
        Field::new("events", DataType::Int64, false),
        Field::new("unpriced", DataType::Int64, false),
        Field::new("first_time", ts, false),
    ]))
}

/// One rollup file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollupFile {
    /// Path under the storage root.
    pub path: String,
    /// The UTC day its hours are in.
    pub dt: String,
    /// Rows.
    pub rows: u64,
    /// Size in bytes.
    #[serde(default)]
    pub bytes: u64,
    /// SHA-256 of its bytes, lowercase hex (empty in format 1).
    #[serde(default)]
    pub sha256: String,
}

/// A version of the rollups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format of this record ([`FORMAT`]).
    pub format: u32,
    /// Version, from 1; each refresh or rebuild publishes the next.
    pub version: u64,
    /// SHA-256 of the previous version's manifest file (`None` for version 1).
    #[serde(default)]
    pub previous: Option<String>,
    /// SHA-256 of the price book the rollups were priced with.
    pub price_book: String,
    /// `topic/partition` -> the last commit record's sequence number covered.
    pub covered: BTreeMap<String, u64>,
    /// The rollup files of this version.
    pub files: Vec<RollupFile>,
    /// Files the previous version listed and this one does not (deleted by
    /// the next refresh, once readers of the previous version are done).
    #[serde(default)]
    pub superseded: Vec<String>,
    /// Raw events rolled up, in total.
    pub events: u64,
    /// When it was published.
    pub built_at: DateTime<Utc>,
}

impl Manifest {
    /// Where version `version` is stored.
    pub fn path(version: u64) -> String {
        format!("{MANIFESTS}{version:020}.json")
    }
}

/// What a refresh found and did.
#[derive(Debug, Clone, Default)]
pub struct Refresh {
    /// The version now in force (`None`: no rollups yet and nothing to roll up).
    pub manifest: Option<Manifest>,
    /// Whether it was priced with the current price book (else reports read
    /// the raw tables until a rebuild).
    pub current: bool,
    /// Commit records rolled up by this refresh.
    pub records: usize,
    /// Raw events rolled up by this refresh.
    pub events: u64,
    /// Rollup files merged by compaction.
    pub compacted: usize,
}

/// SHA-256 of the price book (its configuration as JSON).
pub fn price_book_sha(book: &PriceBook) -> String {
    let json = serde_json::to_vec(book.config()).unwrap_or_default();
    hex(&Sha256::digest(json))
}

/// A tag that keeps two writers' files of the same version apart.
fn nonce() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = Sha256::new();
    h.update(nanos.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    format!("-{}", &hex(&h.finalize())[..12])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Storage(e.to_string())
}

/// The latest published manifest.
pub async fn latest(ctx: &LedgerContext) -> Result<Option<Manifest>, Error> {
    Ok(head(ctx).await?.map(|(m, _)| m))
}

/// The latest published manifest and the SHA-256 of its file.
async fn head(ctx: &LedgerContext) -> Result<Option<(Manifest, String)>, Error> {
    let listed = ctx.storage().list_files(MANIFESTS).await.map_err(err)?;
    let Some(last) = listed.iter().rfind(|p| p.ends_with(".json")) else {
        return Ok(None);
    };
    let bytes = ctx.storage().read(last).await.map_err(err)?;
    let m = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Storage(format!("{last}: not a rollup manifest: {e}")))?;
    Ok(Some((m, sha256_hex(&bytes))))
}

/// Commit records after what `covered` covers whose table files are all
/// published, in chain order per partition.
async fn pending(
    ctx: &LedgerContext,
    covered: &BTreeMap<String, u64>,
) -> Result<Vec<CommitRecord>, Error> {
    let storage = ctx.storage();
    let mut out = Vec::new();
    for topic in storage.topics().await.map_err(err)? {
        for p in storage.partitions(&topic).await.map_err(err)? {
            let after = covered.get(&format!("{topic}/{p}")).copied().unwrap_or(0);
            'records: for r in storage.records_after(&topic, p, after).await.map_err(err)? {
                for f in r
                    .files
                    .iter()
                    .filter(|f| build::ROLLED_UP.contains(&f.table.as_str()))
                {
                    if !storage.exists(&f.path).await.map_err(err)? {
                        // Committed but not yet moved into the table (the
                        // writer is between the two steps): next time.
                        break 'records;
                    }
                }
                out.push(r);
            }
        }
    }
    Ok(out)
}

fn cover(covered: &mut BTreeMap<String, u64>, records: &[CommitRecord]) {
    for r in records {
        let k = format!("{}/{}", r.topic, r.partition);
        let v = covered.entry(k).or_insert(0);
        *v = (*v).max(r.seq);
    }
}

/// Publishes `m` (version `m.version`); `false` when another writer
/// published that version first (its files are then deleted).
async fn publish(ctx: &LedgerContext, m: &Manifest, written: &[RollupFile]) -> Result<bool, Error> {
    let bytes = serde_json::to_vec_pretty(m).map_err(err)?;
    if ctx
        .storage()
        .create(&Manifest::path(m.version), bytes)
        .await
        .map_err(err)?
    {
        return Ok(true);
    }
    for f in written {
        ctx.storage().delete(&f.path).await.map_err(err)?;
    }
    Ok(false)
}

/// Rolls up the commit records the latest manifest does not cover yet,
/// compacts days that have many files, and publishes the next version.
/// Rollups priced with another price book are left alone (`current` is
/// false): `tollgate ledger rebuild` reprices them.
pub async fn refresh(ctx: &LedgerContext) -> Result<Refresh, Error> {
    let sha = price_book_sha(ctx.book());
    for _attempt in 0..5 {
        let (prev, prev_sha) = head(ctx).await?.unzip();
        if prev.as_ref().is_some_and(|m| m.format < FORMAT) {
            // Written before the files were hashed: nothing to check them
            // against, so they are recomputed from the raw tables.
            return rebuild(ctx).await;
        }
        if let Some(m) = &prev {
            if m.price_book != sha {
                return Ok(Refresh {
                    manifest: prev.clone(),
                    current: false,
                    ..Refresh::default()
                });
            }
        }
        let covered = prev.as_ref().map(|m| m.covered.clone()).unwrap_or_default();
        let records = pending(ctx, &covered).await?;
        let version = prev.as_ref().map_or(1, |m| m.version + 1);
        let mut files = prev.as_ref().map(|m| m.files.clone()).unwrap_or_default();
        let mut written = Vec::new();
        let mut events = 0;
        let tag = nonce();
        if !records.is_empty() {
            let (new, n) = build::roll_up(ctx, &records, version, &tag).await?;
            events = n;
            written.extend(new.iter().cloned());
            files.extend(new);
        }
        let c = build::compact(ctx, files, version, &tag, COMPACT_AT).await?;
        let compacted = c.superseded.len();
        written.extend(c.written);
        let (files, superseded) = (c.files, c.superseded);
        if records.is_empty() && compacted == 0 {
            // Nothing new; delete what the previous version superseded.
            if let Some(m) = &prev {
                for p in &m.superseded {
                    ctx.storage().delete(p).await.map_err(err)?;
                }
            }
            return Ok(Refresh {
                current: prev.is_some(),
                manifest: prev,
                ..Refresh::default()
            });
        }
        let mut covered = covered;
        cover(&mut covered, &records);
        let m = Manifest {
            format: FORMAT,
            version,
            previous: prev_sha,
            price_book: sha.clone(),
            covered,
            files,
            superseded,
            events: prev.as_ref().map_or(0, |m| m.events) + events,
            built_at: Utc::now(),
        };
        if publish(ctx, &m, &written).await? {
            if let Some(p) = &prev {
                for f in &p.superseded {
                    ctx.storage().delete(f).await.map_err(err)?;
                }
            }
            return Ok(Refresh {
                manifest: Some(m),
                current: true,
                records: records.len(),
                events,
                compacted,
            });
        }
        // Another refresh published this version first: start again from it.
    }
    Err(Error::Storage(
        "rollups: other writers kept publishing new versions; try again".into(),
    ))
}

/// The rollups as a reader uses them, writing nothing: the newest manifest
/// and, computed in memory from the raw files, the facets of the commit
/// records it does not cover yet (the tail). Only `tollgate run` (after its
/// commits) and `tollgate ledger refresh | rebuild` write rollups.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The newest manifest.
    pub manifest: Manifest,
    /// The tail's facets, in the rollups' schema.
    pub tail: Option<arrow::array::RecordBatch>,
    /// Commit records in the tail.
    pub tail_records: usize,
    /// Raw events in the tail.
    pub tail_events: u64,
}

/// Why a reader reads the raw tables instead of the rollups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// No rollups were built yet.
    None,
    /// Written before files were hashed: `tollgate ledger rebuild`.
    OldFormat(u64),
    /// Priced with another price book: `tollgate ledger rebuild`.
    OtherPriceBook(u64),
}

/// The [`Snapshot`] of the newest rollups, or why there is none to use.
pub async fn snapshot(ctx: &LedgerContext) -> Result<Result<Snapshot, Unusable>, Error> {
    let Some((manifest, _)) = head(ctx).await? else {
        return Ok(Err(Unusable::None));
    };
    if manifest.format < FORMAT {
        return Ok(Err(Unusable::OldFormat(manifest.version)));
    }
    if manifest.price_book != price_book_sha(ctx.book()) {
        return Ok(Err(Unusable::OtherPriceBook(manifest.version)));
    }
    let records = pending(ctx, &manifest.covered).await?;
    let (tail, tail_events) = build::tail(ctx, &records).await?;
    Ok(Ok(Snapshot {
        manifest,
        tail,
        tail_records: records.len(),
        tail_events,
    }))
}

/// Recomputes every rollup from the raw tables (every commit record's
/// files), priced with the current price book, and publishes it as the
/// next version; the previous version's files are deleted by the next
/// refresh.
pub async fn rebuild(ctx: &LedgerContext) -> Result<Refresh, Error> {
    let (prev, prev_sha) = head(ctx).await?.unzip();
    let records = pending(ctx, &BTreeMap::new()).await?;
    let version = prev.as_ref().map_or(1, |m| m.version + 1);
    let (files, events) = build::roll_up(ctx, &records, version, &nonce()).await?;
    let mut superseded: Vec<String> = Vec::new();
    if let Some(p) = &prev {
        superseded.extend(p.files.iter().map(|f| f.path.clone()));
        superseded.extend(p.superseded.iter().cloned());
    }
    let mut covered = BTreeMap::new();
    cover(&mut covered, &records);
    let m = Manifest {
        format: FORMAT,
        version,
        previous: prev_sha,
        price_book: price_book_sha(ctx.book()),
        covered,
        files: files.clone(),
        superseded,
        events,
        built_at: Utc::now(),
    };
    if !publish(ctx, &m, &files).await? {
        return Err(Error::Storage(format!(
            "rollups: another refresh published version {version} while rebuilding; run the rebuild again"
        )));
    }
    Ok(Refresh {
        manifest: Some(m),
        current: true,
        records: records.len(),
        events,
        compacted: 0,
    })
}
