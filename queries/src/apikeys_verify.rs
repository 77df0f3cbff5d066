//! `verify` of the API keys (`auth/api_keys/<id>/NNNNNN.json`): every
//! object in its place, each key's states numbered from 1 without a gap,
//! and each later state only revoking the key or shortening its expiry
//! (what `revoke` and `rotate` write): a state that widens a key (new
//! roles, another organisation, a longer life, a revocation undone) is
//! named. The first state of a key is not anchored by any hash elsewhere:
//! someone who can write the storage can add or edit a key wholesale
//! without this check noticing (docs/storage.md says so).

use std::collections::BTreeMap;

use tollgate_storage::{DerivedChain, Problem, Storage, StorageError, VerifyReport};

use crate::apikeys::{ApiKey, DIR};

/// Checks the API keys in `storage` and adds what is wrong to `report`,
/// with a summary (`api keys`: states, keys) in `report.derived`.
pub async fn verify(storage: &Storage, report: &mut VerifyReport) -> Result<(), StorageError> {
    let mut keys: BTreeMap<String, BTreeMap<u64, String>> = BTreeMap::new();
    for path in storage.list_files(DIR).await? {
        match place(&path) {
            Some((id, seq)) => {
                keys.entry(id).or_default().insert(seq, path);
            }
            None => report.problems.push(Problem::new(
                "stray_api_key_object",
                &path,
                format!("not an API key state ({DIR}<id>/<6-digit number>.json)"),
            )),
        }
    }
    let mut states = 0;
    for (id, seqs) in &keys {
        let mut first: Option<ApiKey> = None;
        let mut prev: Option<ApiKey> = None;
        let mut expected = 1;
        for (seq, path) in seqs {
            if *seq != expected {
                report.problems.push(Problem::new(
                    "api_key_gap",
                    path,
                    format!(
                        "state {seq} of key {id} follows state {}: a state is missing",
                        expected - 1
                    ),
                ));
            }
            expected = seq + 1;
            let bytes = storage.read(path).await?;
            let key: ApiKey = match serde_json::from_slice(&bytes) {
                Ok(k) => k,
                Err(e) => {
                    report.problems.push(Problem::new(
                        "bad_api_key",
                        path,
                        format!("not an API key state: {e}"),
                    ));
                    continue;
                }
            };
            states += 1;
            if &key.id != id {
                report.problems.push(Problem::new(
                    "misplaced_api_key",
                    path,
                    format!("holds key {} under key {id}'s folder", key.id),
                ));
            }
            if let Some(f) = &first {
                let widened = widened(f, prev.as_ref().unwrap_or(f), &key);
                if !widened.is_empty() {
                    report.problems.push(Problem::new(
                        "api_key_widened",
                        path,
                        format!(
                            "changes {} of key {id}: a later state may only revoke the key or shorten its expiry",
                            widened.join(", ")
                        ),
                    ));
                }
            } else {
                first = Some(key.clone());
            }
            prev = Some(key);
        }
    }
    report.derived.push(DerivedChain {
        name: "api keys".into(),
        links: states,
        head: None,
        head_sha256: None,
        files: keys.len() as u64,
        bytes: 0,
    });
    Ok(())
}

/// `(id, state number)` of a path `auth/api_keys/<id>/NNNNNN.json`.
fn place(path: &str) -> Option<(String, u64)> {
    let rest = path.strip_prefix(DIR)?;
    let (id, name) = rest.split_once('/')?;
    let digits = name.strip_suffix(".json")?;
    if id.is_empty() || digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((id.to_string(), digits.parse().ok()?))
}

/// What `next` changes beyond a revocation or a shorter expiry, against
/// the key's first state and the state before it.
fn widened(first: &ApiKey, before: &ApiKey, next: &ApiKey) -> Vec<&'static str> {
    let mut out = Vec::new();
    if next.sha256 != first.sha256 {
        out.push("its hash");
    }
    if next.org != first.org {
        out.push("its organisation");
    }
    if next.team != first.team {
        out.push("its team");
    }
    if next.roles != first.roles {
        out.push("its roles");
    }
    if next.created != first.created {
        out.push("its issue time");
    }
    if next.replaces != first.replaces {
        out.push("the key it replaces");
    }
    if next.expires > before.expires {
        out.push("its expiry (later)");
    }
    if before.revoked && !next.revoked {
        out.push("its revocation (undone)");
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::Duration;
    use tollgate_storage::StorageConfig;

    use super::*;
    use crate::apikeys::ApiKeyStore;
    use crate::principal::Role;

    fn problems(dir: &std::path::Path) -> Vec<(&'static str, String)> {
        let storage = Storage::open(&StorageConfig::local(dir), "verify").unwrap();
        let mut report = VerifyReport::default();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(verify(&storage, &mut report))
            .unwrap();
        report
            .problems
            .into_iter()
            .map(|p| (p.kind, p.path))
            .collect()
    }

    #[test]
    fn revocations_and_rotations_pass_and_a_widened_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StorageConfig::local(dir.path());
        let store = ApiKeyStore::open(&cfg).unwrap();
        let (_, a) = store
            .create(
                "a",
                "acme",
                Some("search"),
                &[Role::Viewer],
                Duration::days(30),
            )
            .unwrap();
        let (_, b) = store
            .rotate(&a.id, Duration::days(30), Duration::hours(1))
            .unwrap();
        store.revoke(&b.id).unwrap();
        assert_eq!(problems(dir.path()), vec![]);

        // A third state of b that undoes its revocation and makes it an
        // organisation admin.
        let state = |id: &str, n: u64| dir.path().join(format!("{DIR}{id}/{n:06}.json"));
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(state(&b.id, 2)).unwrap()).unwrap();
        v["revoked"] = false.into();
        v["roles"] = serde_json::json!(["admin"]);
        std::fs::write(state(&b.id, 3), serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        // A's first state deleted; a stray object.
        std::fs::remove_file(state(&a.id, 1)).unwrap();
        std::fs::write(dir.path().join(format!("{DIR}notes.txt")), "x").unwrap();
        let found = problems(dir.path());
        let rel = |id: &str, n: u64| format!("{DIR}{id}/{n:06}.json");
        for (kind, path) in [
            ("api_key_widened", rel(&b.id, 3)),
            ("api_key_gap", rel(&a.id, 2)),
            ("stray_api_key_object", format!("{DIR}notes.txt")),
        ] {
            assert!(
                found.iter().any(|(k, p)| *k == kind && *p == path),
                "expected {kind} on {path}: {found:?}"
            );
        }
    }
}
