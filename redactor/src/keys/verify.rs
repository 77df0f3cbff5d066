//! `tollgate verify` of the sealed tenant keys: every object under `keys/`
//! in its tenant's folder, numbered from 1 without a gap, each linked to the
//! SHA-256 of the one before, and (with the master key) each one opening.

use std::collections::BTreeMap;

use tollgate_storage::{sha256_hex, DerivedChain, Problem, Storage, VerifyReport};

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
    let err = |e: tollgate_storage::StorageError| Error::KeyStore(e.to_string());
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tollgate_storage::StorageConfig;

    use super::super::{key_path, master_key, KeyStore};
    use super::*;

    async fn problems(dir: &std::path::Path, master: Option<&MasterKey>) -> Vec<(String, String)> {
        let storage = Storage::open(&StorageConfig::local(dir), "verify").unwrap();
        let mut report = VerifyReport::default();
        verify(&storage, master, &mut report).await.unwrap();
        report
            .problems
            .iter()
            .map(|p| (p.kind.to_string(), p.path.clone()))
            .collect()
    }

    fn has(p: &[(String, String)], kind: &str, path: &str) -> bool {
        p.iter().any(|(k, q)| k == kind && q == path)
    }

    #[test]
    fn tampered_sealed_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StorageConfig::local(dir.path());
        let master = master_key(None, &cfg).unwrap();
        let store = KeyStore::open(&cfg, master.clone(), &BTreeMap::new()).unwrap();
        store.key_for("acme").unwrap();
        store.rotate("acme").unwrap();
        store.rotate("acme").unwrap();
        store.key_for("globex").unwrap();
        drop(store);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert!(rt.block_on(problems(dir.path(), Some(&master))).is_empty());
        let file = |p: &str| dir.path().join(p);
        let (one, two, three) = (
            key_path("acme", 1),
            key_path("acme", 2),
            key_path("acme", 3),
        );

        // Edited sealed bytes (the newest key, which nothing links to):
        // it does not open.
        let original = std::fs::read_to_string(file(&three)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&original).unwrap();
        let sealed = v["sealed"].as_str().unwrap();
        let flipped = format!(
            "{}{}",
            if sealed.starts_with('0') { "1" } else { "0" },
            &sealed[1..]
        );
        std::fs::write(file(&three), original.replace(sealed, &flipped)).unwrap();
        let p = rt.block_on(problems(dir.path(), Some(&master)));
        assert!(has(&p, "key_does_not_open", &three), "{p:?}");
        // Without the master key only the chain is checked.
        assert!(rt.block_on(problems(dir.path(), None)).is_empty());
        std::fs::write(file(&three), &original).unwrap();

        // Relabelled: another id on the same sealed key.
        let text = std::fs::read_to_string(file(&two)).unwrap();
        let id = serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        std::fs::write(file(&two), text.replace(&id, "k20260101-0000")).unwrap();
        let p = rt.block_on(problems(dir.path(), Some(&master)));
        assert!(has(&p, "key_does_not_open", &two), "{p:?}");
        assert!(has(&p, "broken_key_chain", &two), "{p:?}");
        std::fs::write(file(&two), &text).unwrap();

        // Deleted: the gap is named.
        std::fs::remove_file(file(&two)).unwrap();
        let p = rt.block_on(problems(dir.path(), Some(&master)));
        assert!(has(&p, "key_gap", &three), "{p:?}");
        std::fs::write(file(&two), &text).unwrap();

        // Moved to another tenant: misplaced, and it does not open there.
        let globex2 = key_path("globex", 2);
        std::fs::copy(file(&one), file(&globex2)).unwrap();
        let p = rt.block_on(problems(dir.path(), Some(&master)));
        assert!(has(&p, "misplaced_key", &globex2), "{p:?}");
        std::fs::remove_file(file(&globex2)).unwrap();

        // A stray object.
        std::fs::write(dir.path().join("keys/readme.txt"), "x").unwrap();
        let p = rt.block_on(problems(dir.path(), Some(&master)));
        assert!(has(&p, "stray_key_object", "keys/readme.txt"), "{p:?}");
    }
}
