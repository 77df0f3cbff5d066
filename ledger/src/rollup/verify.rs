//! Checking rollups against their manifests: one file before a report or a
//! compaction reads it ([`check_file`]), and the whole manifest chain for
//! `tollgate verify` ([`verify`]).

use futures::future::try_join_all;
use tollgate_storage::{sha256_hex, DerivedChain, Problem, Storage, VerifyReport};

use super::{err, Manifest, RollupFile, FORMAT, MANIFESTS};
use crate::{Error, LedgerContext};

/// What to do about altered rollups.
const REBUILD: &str = "run `tollgate ledger rebuild` to recompute the rollups from the raw tables";

/// Rollup files a report checks at once.
const CHECKS_AT_ONCE: usize = 8;

/// What is wrong with a rollup file: a problem kind and a sentence.
type Mismatch = (&'static str, String);

/// Checks `f` against the size and SHA-256 its manifest recorded, so that a
/// report never prints a figure computed from an altered file. The error
/// names the file and `tollgate ledger rebuild`.
pub async fn check_file(ctx: &LedgerContext, f: &RollupFile) -> Result<(), Error> {
    match mismatch(ctx.storage(), f).await? {
        None => Ok(()),
        Some((_, why)) => Err(Error::Integrity(format!(
            "rollup file {} {why}; {REBUILD}",
            f.path
        ))),
    }
}

/// Checks `files` as [`check_file`] does, several at a time (an object
/// store's latency is paid once per batch, not once per file).
pub async fn check_files(ctx: &LedgerContext, files: &[&RollupFile]) -> Result<(), Error> {
    // Futures collected at once rather than a stream adapter over a closure:
    // the latter makes callers' futures (axum handlers) fail `Send`.
    for chunk in files.chunks(CHECKS_AT_ONCE) {
        let checks: Vec<_> = chunk.iter().map(|f| check_file(ctx, f)).collect();
        try_join_all(checks).await?;
    }
    Ok(())
}

/// What is wrong with `f`, or `None`. A failure to reach the storage is an
/// error, not a mismatch.
async fn mismatch(storage: &Storage, f: &RollupFile) -> Result<Option<Mismatch>, Error> {
    if f.sha256.is_empty() {
        return Ok(Some((
            "rollup_unhashed",
            "has no SHA-256 in its manifest (written before rollup files were hashed)".into(),
        )));
    }
    let bytes = match storage.read(&f.path).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => {
            return Ok(Some((
                "rollup_missing",
                "is listed by its manifest but absent".into(),
            )))
        }
        Err(e) => return Err(err(e)),
    };
    if bytes.len() as u64 != f.bytes {
        return Ok(Some((
            "rollup_size_mismatch",
            format!("is {} bytes, its manifest says {}", bytes.len(), f.bytes),
        )));
    }
    let sha = sha256_hex(&bytes);
    if sha != f.sha256 {
        return Ok(Some((
            "rollup_hash_mismatch",
            format!("has SHA-256 {sha}, its manifest says {}", f.sha256),
        )));
    }
    Ok(None)
}

/// Walks the rollup manifests in version order and adds what it finds to
/// `report`: every version present once and in place, each naming the
/// SHA-256 of the one before (an edited, deleted, inserted or reordered
/// manifest breaks the chain), and every file of the newest version present
/// with the size and SHA-256 it lists. Older versions' files may be gone:
/// refreshes delete what a newer version superseded.
pub async fn verify(storage: &Storage, report: &mut VerifyReport) -> Result<(), Error> {
    let mut chain = DerivedChain {
        name: "rollups".into(),
        ..DerivedChain::default()
    };
    let mut prev: Option<(u64, String)> = None;
    let mut newest: Option<(String, Manifest)> = None;
    for path in storage.list_files(MANIFESTS).await.map_err(err)? {
        if !path.ends_with(".json") {
            report.problems.push(Problem::new(
                "stray_rollup_object",
                &path,
                "is not a rollup manifest (a .json file)",
            ));
            continue;
        }
        let bytes = storage.read(&path).await.map_err(err)?;
        let sha = sha256_hex(&bytes);
        chain.links += 1;
        let m: Manifest = match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => {
                report.problems.push(Problem::new(
                    "bad_manifest",
                    &path,
                    format!("is not a rollup manifest: {e}"),
                ));
                prev = None;
                continue;
            }
        };
        if Manifest::path(m.version) != path {
            report.problems.push(Problem::new(
                "misplaced_manifest",
                &path,
                format!("says it is version {}", m.version),
            ));
        }
        let expected = prev.as_ref().map_or(1, |(v, _)| v + 1);
        if m.version != expected {
            report.problems.push(Problem::new(
                "manifest_gap",
                &path,
                format!(
                    "version {} follows version {}; a manifest is missing, inserted or reordered",
                    m.version,
                    expected - 1
                ),
            ));
        }
        if m.format >= FORMAT {
            let before = prev.as_ref().map(|(_, s)| s.as_str());
            if m.previous.as_deref() != before {
                report.problems.push(Problem::new(
                    "broken_manifest_chain",
                    &path,
                    format!(
                        "names previous manifest SHA-256 {} but the manifest before it has {}; one of them was altered",
                        m.previous.as_deref().unwrap_or("none"),
                        before.unwrap_or("none (it is the first)")
                    ),
                ));
            }
        }
        prev = Some((m.version, sha.clone()));
        chain.head = Some(path.clone());
        chain.head_sha256 = Some(sha);
        newest = Some((path, m));
    }
    if let Some((path, m)) = newest {
        if m.format < FORMAT {
            report.problems.push(Problem::new(
                "rollup_unhashed",
                &path,
                format!(
                    "is format {} (its files are not hashed); {REBUILD}",
                    m.format
                ),
            ));
        } else {
            for f in &m.files {
                match mismatch(storage, f).await? {
                    Some((kind, why)) => report.problems.push(Problem::new(
                        kind,
                        &f.path,
                        format!("{why} (manifest version {})", m.version),
                    )),
                    None => {
                        chain.files += 1;
                        chain.bytes += f.bytes;
                    }
                }
            }
        }
    }
    if chain.links > 0 {
        report.files += chain.files;
        report.bytes += chain.bytes;
        report.derived.push(chain);
    }
    Ok(())
}
