//! Rollups under verification: a report refuses a rollup file that differs
//! from its manifest (naming the file and `tollgate ledger rebuild`), and
//! `verify` names every edited, deleted, inserted or reordered manifest and
//! every altered or missing file of the newest version.

use std::path::Path;

use tollgate_event::Event;
use tollgate_ledger::report::{self, Period};
use tollgate_ledger::rollup::{self, Manifest};
use tollgate_ledger::{Error, LedgerContext, PriceBook};
use tollgate_storage::StorageConfig;
use tollgate_storage::{Storage, VerifyReport};

use crate::rollups::{commit_share, events};

/// Rollup versions in the base store: one per commit.
const VERSIONS: usize = 3;

fn config(dir: &Path) -> StorageConfig {
    StorageConfig {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    }
}

/// A store with [`VERSIONS`] rollup versions of `all`.
async fn base(dir: &Path, all: &[Event], book: &PriceBook) -> Manifest {
    let storage = Storage::open(&config(dir), "test").unwrap();
    let mut ctx = LedgerContext::open(&config(dir), book).await.unwrap();
    let mut offset = 0;
    for i in 0..VERSIONS {
        commit_share(&storage, all, i, VERSIONS, &mut offset).await;
        assert!(ctx.use_rollups().await.unwrap().current);
    }
    ctx.rollups().unwrap().clone()
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

async fn verify(dir: &Path) -> VerifyReport {
    let storage = Storage::open(&config(dir), "auditor").unwrap();
    tollgate_ledger::verify(&storage).await.unwrap()
}

/// Whether `report` names `path` with `kind`.
fn names(report: &VerifyReport, kind: &str, path: &str) -> bool {
    report
        .problems
        .iter()
        .any(|p| p.kind == kind && p.path == path)
}

/// September's chargeback (UTC) from the rollups, as JSON.
async fn september(dir: &Path, book: &PriceBook) -> Result<String, Error> {
    let mut ctx = LedgerContext::open(&config(dir), book).await?;
    assert!(ctx.use_rollups().await?.current);
    let p = Period::month("2026-09", "UTC").unwrap();
    let c = report::chargeback(&ctx, &p, book.currency()).await?;
    Ok(serde_json::to_string(&c).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_rollups_are_refused_by_reports_and_named_by_verify() {
    let book = tollgate_fixtures::demo_price_book().unwrap();
    let all = events();
    let root = tempfile::tempdir().unwrap();
    let clean = root.path().join("clean");
    let newest = base(&clean, &all, &book).await;
    assert_eq!(newest.version, VERSIONS as u64);
    assert!(newest.previous.is_some());

    let ok = verify(&clean).await;
    assert!(ok.ok(), "{:?}", ok.problems);
    let chain = ok.derived.iter().find(|d| d.name == "rollups").unwrap();
    assert_eq!(chain.links, VERSIONS as u64);
    assert_eq!(chain.files, newest.files.len() as u64);
    assert_eq!(chain.head.as_deref(), Some(Manifest::path(3).as_str()));
    let figures = september(&clean, &book).await.unwrap();
    assert!(figures.contains("\"teams\":[{"), "{figures}");

    let sept: Vec<_> = newest
        .files
        .iter()
        .filter(|f| f.dt.starts_with("2026-09"))
        .collect();
    let oct = newest
        .files
        .iter()
        .find(|f| f.dt.starts_with("2026-10"))
        .unwrap();
    assert!(sept.len() >= 2);
    let case = |name: &str| {
        let d = root.path().join(name);
        copy_dir(&clean, &d);
        d
    };

    // Files of the newest version: one byte flipped, rewritten with another
    // valid rollup file's bytes, deleted. The report refuses each, naming
    // the file and the rebuild; verify names each.
    let flipped = case("flipped");
    let f = flipped.join(&sept[0].path);
    let mut bytes = std::fs::read(&f).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&f, bytes).unwrap();

    let rewritten = case("rewritten");
    std::fs::copy(rewritten.join(&oct.path), rewritten.join(&sept[1].path)).unwrap();

    let deleted = case("deleted");
    std::fs::remove_file(deleted.join(&sept[0].path)).unwrap();

    for (dir, path, kinds) in [
        (&flipped, &sept[0].path, &["rollup_hash_mismatch"][..]),
        (
            &rewritten,
            &sept[1].path,
            &["rollup_size_mismatch", "rollup_hash_mismatch"][..],
        ),
        (&deleted, &sept[0].path, &["rollup_missing"][..]),
    ] {
        match september(dir, &book).await {
            Err(Error::Integrity(m)) => assert!(
                m.contains(path.as_str()) && m.contains("tollgate ledger rebuild"),
                "{m}"
            ),
            other => panic!(
                "{}: a report from an altered rollup: {other:?}",
                dir.display()
            ),
        }
        let r = verify(dir).await;
        assert!(
            kinds.iter().any(|k| names(&r, k, path)),
            "{}: {:?}",
            dir.display(),
            r.problems
        );
    }

    // A rebuild recomputes the rollups from the raw tables: the same
    // figures as before the damage, and verify passes again.
    let ctx = LedgerContext::open(&config(&flipped), &book).await.unwrap();
    rollup::rebuild(&ctx).await.unwrap();
    assert_eq!(september(&flipped, &book).await.unwrap(), figures);
    let r = verify(&flipped).await;
    assert!(r.ok(), "{:?}", r.problems);

    // Manifests: one edited in the middle of the chain, one deleted, two
    // swapped, one inserted after the newest.
    let v = |n: u64| Manifest::path(n);
    let edited = case("edited");
    let m2 = edited.join(v(2));
    let text = std::fs::read_to_string(&m2).unwrap();
    let changed = text.replacen("\"events\": ", "\"events\": 1", 1);
    assert_ne!(text, changed);
    std::fs::write(&m2, changed).unwrap();
    let r = verify(&edited).await;
    assert!(
        names(&r, "broken_manifest_chain", &v(3)),
        "{:?}",
        r.problems
    );

    let gone = case("gone");
    std::fs::remove_file(gone.join(v(2))).unwrap();
    let r = verify(&gone).await;
    assert!(names(&r, "manifest_gap", &v(3)), "{:?}", r.problems);

    let swapped = case("swapped");
    let (a, b) = (swapped.join(v(1)), swapped.join(v(2)));
    let (ab, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::write(&a, bb).unwrap();
    std::fs::write(&b, ab).unwrap();
    let r = verify(&swapped).await;
    assert!(names(&r, "misplaced_manifest", &v(1)), "{:?}", r.problems);
    assert!(names(&r, "misplaced_manifest", &v(2)), "{:?}", r.problems);

    let inserted = case("inserted");
    std::fs::copy(inserted.join(v(2)), inserted.join(v(5))).unwrap();
    let r = verify(&inserted).await;
    assert!(names(&r, "manifest_gap", &v(5)), "{:?}", r.problems);
    assert!(names(&r, "misplaced_manifest", &v(5)), "{:?}", r.problems);
}
