//! `tollgate verify` of the sealed tenant keys: every object under `keys/`
//! in its tenant's folder, numbered from 1 without a gap, each linked to the
//! SHA-256 of the one before, and (with the master key) each one opening.

use std::collections::BTreeMap;

use tollgate_ingest::storage::{sha256_hex, DerivedChain, Problem, Storage, VerifyReport};

use super::{key_path, MasterKey, SealedKey, DIR};
use crate::Error;

/// The tenant a folder name `t-<hex>` stands for.
fn tenant_of(folder: &str) -> Option<String> {
    let hex_name = folder.strip_prefix("t-")?;
    String::from_utf8(hex::decode(hex_name).ok()?).ok()
}

/// Walks every tenant's keys, adding problems and a summary to `report`.
/// Without `master` the keys are checked for place and chain but not opened.
pub async fn verify(
    storage: &Storage,
    master: Option<&MasterKey>,
    report: &mut VerifyReport,
) -> Result<(), Error> {
    let err = |e: tollgate_ingest::storage::StorageError| Error::KeyStore(e.to_string());
    let mut folders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for path in storage.list_files(DIR).await.map_err(err)? {
        let rest = path.strip_prefix(DIR).unwrap_or(&path);
        match rest.split_once('/') {
            Some((folder, name)) if !name.contains('/') && tenant_of(folder).is_some() => {
                folders.entry(folder.to_string()).or_default().push(path);
            }
            _ => report.problems.push(Problem::new(
                "stray_key_object",
                &path,
                "is not a tenant key (keys/t-<tenant in hex>/NNNNNN.json)",
            )),
        }
    }
    let mut chain = DerivedChain {
        name: "tenant keys".into(),
        ..DerivedChain::default()
    };
    for (folder, paths) in folders {
        let tenant = tenant_of(&folder).unwrap_or_default();
        let mut prev: Option<(u64, String, String)> = None;
        for path in paths {
            let bytes = storage.read(&path).await.map_err(err)?;
            chain.links += 1;
            chain.bytes += bytes.len() as u64;
            let sha = sha256_hex(&bytes);
            let k: SealedKey = match serde_json::from_slice(&bytes) {
                Ok(k) => k,
                Err(e) => {
                    report.problems.push(Problem::new(
                        "bad_key",
                        &path,
                        format!("is not a sealed tenant key: {e}"),
                    ));
                    prev = None;
                    continue;
                }
            };
            if k.tenant != tenant || key_path(&tenant, k.sequence) != path {
                report.problems.push(Problem::new(
                    "misplaced_key",
                    &path,
                    format!(
                        "says it is key {} of tenant {:?}, which belongs at {}",
                        k.sequence,
                        k.tenant,
                        key_path(&k.tenant, k.sequence)
                    ),
                ));
            }
            let expected = prev.as_ref().map_or(1, |(s, _, _)| s + 1);
            if k.sequence != expected {
                report.problems.push(Problem::new(
                    "key_gap",
                    &path,
                    format!(
                        "is key {} but key {expected} comes next (one is missing)",
                        k.sequence
                    ),
                ));
            }
            let want = prev.as_ref().map(|(_, s, _)| s.clone());
            if k.previous != want {
                report.problems.push(match &prev {
                    Some((_, actual, before)) => Problem::broken_link(
                        "broken_key_chain",
                        "key",
                        before,
                        actual,
                        &path,
                        k.previous.as_deref(),
                    ),
                    None => Problem::new(
                        "broken_key_chain",
                        &path,
                        "is a tenant's first key but records a previous one",
                    ),
                });
            }
            if let Some(master) = master {
                match k.open(master, &path) {
                    Ok(_) => chain.files += 1,
                    Err(e) => report.problems.push(Problem::new(
                        "key_does_not_open",
                        &path,
                        e.to_string(),
                    )),
                }
            }
            prev = Some((k.sequence, sha, path));
        }
    }
    report.derived.push(chain);
    Ok(())
}
