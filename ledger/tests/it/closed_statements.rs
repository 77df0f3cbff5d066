//! Closed statements in the storage: closed once however many instances
//! race, chained in closing order, refused by reports when altered, and
//! named by `verify` when edited, deleted, reordered, inserted or stray.

use std::path::Path;

use tollgate_ledger::report::{self, close, statement_path, ClosedBook, Period};
use tollgate_ledger::{Error, LedgerContext, PriceBook};
use tollgate_storage::StorageConfig;
use tollgate_storage::{Storage, VerifyReport};

use crate::rollup_integrity::copy_dir;
use crate::rollups::{commit_share, events};

fn config(dir: &Path) -> StorageConfig {
    StorageConfig {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    }
}

async fn verify(dir: &Path) -> VerifyReport {
    let storage = Storage::open(&config(dir), "auditor").unwrap();
    tollgate_ledger::verify(&storage).await.unwrap()
}

fn kinds(report: &VerifyReport) -> Vec<(String, String)> {
    report
        .problems
        .iter()
        .map(|p| (p.kind.to_string(), p.path.clone()))
        .collect()
}

fn named(report: &VerifyReport, kind: &str, path: &str) -> bool {
    report
        .problems
        .iter()
        .any(|p| p.kind == kind && p.path == path)
}

async fn close_month(dir: &Path, book: &PriceBook, month: &str) -> Result<(String, String), Error> {
    let ctx = LedgerContext::open(&config(dir), book).await?;
    let p = Period::month(month, "UTC").unwrap();
    close(&ctx, &p, book.currency()).await
}

/// September's statement as a report prints it (the frozen one once closed).
async fn september(dir: &Path, book: &PriceBook) -> Result<String, Error> {
    let ctx = LedgerContext::open(&config(dir), book).await?;
    let closed = ClosedBook::load(ctx.storage()).await?;
    let p = Period::month("2026-09", "UTC").unwrap();
    let c = report::statement(&ctx, &closed, &p, book.currency()).await?;
    Ok(serde_json::to_string(&c).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_statements_are_closed_once_chained_and_checked() {
    let book = tollgate_fixtures::demo_price_book().unwrap();
    let all = events();
    let root = tempfile::tempdir().unwrap();
    let clean = root.path().join("clean");
    let storage = Storage::open(&config(&clean), "test").unwrap();
    let mut offset = 0;
    commit_share(&storage, &all, 0, 1, &mut offset).await;

    // Eight closes of September at once: exactly one wins.
    let races: Vec<_> = (0..8)
        .map(|_| close_month(&clean, &book, "2026-09"))
        .collect();
    let results = futures::future::join_all(races).await;
    let won: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(
                e.to_string().contains("2026-09 was closed at"),
                "a lost race says the month is closed: {e}"
            );
        }
    }
    // Two other months at once: both close, one after the other in the chain.
    let (a, b) = tokio::join!(
        close_month(&clean, &book, "2026-07"),
        close_month(&clean, &book, "2026-08")
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut paths = vec![a.0, b.0, won[0].as_ref().unwrap().0.clone()];
    paths.sort();
    assert_eq!(
        paths,
        [statement_path(1), statement_path(2), statement_path(3)]
    );

    let report = verify(&clean).await;
    assert!(report.ok(), "{:?}", kinds(&report));
    let chain = report
        .derived
        .iter()
        .find(|d| d.name == "closed statements")
        .unwrap();
    assert_eq!((chain.links, chain.files), (3, 3));

    // The frozen September does not change when events arrive later.
    let frozen = september(&clean, &book).await.unwrap();
    assert!(frozen.contains("\"2026-09\""));
    commit_share(&storage, &all, 0, 1, &mut offset).await;
    assert_eq!(september(&clean, &book).await.unwrap(), frozen);

    let total = {
        let v: serde_json::Value = serde_json::from_str(&frozen).unwrap();
        v["total"].as_str().unwrap().to_string()
    };
    let september_path = ClosedBook::load(&storage)
        .await
        .unwrap()
        .path("2026-09")
        .unwrap()
        .to_string();
    let file = |dir: &Path, p: &str| dir.join(p);
    let case = |name: &str| {
        let dir = root.path().join(name);
        copy_dir(&clean, &dir);
        dir
    };

    // Edited: a figure changed, as jq or a text editor would.
    let dir = case("edited");
    let f = file(&dir, &september_path);
    let text = std::fs::read_to_string(&f).unwrap();
    let needle = format!("\"total\": \"{total}\"");
    assert!(text.contains(&needle), "{needle} in {text}");
    std::fs::write(&f, text.replace(&needle, "\"total\": \"0.01\"")).unwrap();
    let r = verify(&dir).await;
    assert!(
        named(&r, "statement_hash_mismatch", &september_path),
        "{:?}",
        kinds(&r)
    );
    let e = september(&dir, &book).await.unwrap_err().to_string();
    assert!(e.contains(&september_path) && e.contains("edited"), "{e}");

    // Edited without changing a value (whitespace): still named.
    let dir = case("reformatted");
    let f = file(&dir, &statement_path(3));
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, text.replacen(": ", ":  ", 1)).unwrap();
    let r = verify(&dir).await;
    assert!(
        named(&r, "statement_hash_mismatch", &statement_path(3)),
        "{:?}",
        kinds(&r)
    );

    // Deleted (not the newest): the gap is named.
    let dir = case("deleted");
    std::fs::remove_file(file(&dir, &statement_path(2))).unwrap();
    let r = verify(&dir).await;
    assert!(
        named(&r, "statement_gap", &statement_path(3)),
        "{:?}",
        kinds(&r)
    );
    assert!(september(&dir, &book).await.is_err());

    // Reordered: two statements swapped.
    let dir = case("reordered");
    let (one, two) = (
        file(&dir, &statement_path(1)),
        file(&dir, &statement_path(2)),
    );
    let (b1, b2) = (std::fs::read(&one).unwrap(), std::fs::read(&two).unwrap());
    std::fs::write(&one, b2).unwrap();
    std::fs::write(&two, b1).unwrap();
    let r = verify(&dir).await;
    assert!(
        named(&r, "misplaced_statement", &statement_path(1)),
        "{:?}",
        kinds(&r)
    );
    assert!(
        named(&r, "misplaced_statement", &statement_path(2)),
        "{:?}",
        kinds(&r)
    );

    // Inserted: a forged fourth statement that links to nothing real.
    let dir = case("inserted");
    let forged = std::fs::read_to_string(file(&dir, &statement_path(3)))
        .unwrap()
        .replacen("\"sequence\": 3", "\"sequence\": 4", 1);
    std::fs::write(file(&dir, &statement_path(4)), forged).unwrap();
    let r = verify(&dir).await;
    assert!(
        named(&r, "broken_statement_chain", &statement_path(3)),
        "{:?}",
        kinds(&r)
    );
    assert!(
        named(&r, "statement_hash_mismatch", &statement_path(4)),
        "{:?}",
        kinds(&r)
    );

    // A stray object beside the chain.
    let dir = case("stray");
    std::fs::write(dir.join("ledger/statements/2026-10.json"), "{}").unwrap();
    let r = verify(&dir).await;
    assert!(
        named(
            &r,
            "stray_statement_object",
            "ledger/statements/2026-10.json"
        ),
        "{:?}",
        kinds(&r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_closed_before_the_chain_are_read_then_moved_into_it() {
    let book = tollgate_fixtures::demo_price_book().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    close_month(dir, &book, "2026-05").await.unwrap();
    // Make 2026-05 look as an older version wrote it: a file and its sum.
    let storage = Storage::open(&config(dir), "test").unwrap();
    let bytes = storage.read(&statement_path(1)).await.unwrap();
    let mut old: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let obj = old.as_object_mut().unwrap();
    for k in ["sequence", "previous", "content_sha256"] {
        obj.remove(k);
    }
    let legacy = serde_json::to_vec_pretty(&old).unwrap();
    let sha = tollgate_storage::sha256_hex(&legacy);
    std::fs::create_dir_all(dir.join("ledger/closed")).unwrap();
    std::fs::write(dir.join("ledger/closed/2026-05.json"), &legacy).unwrap();
    std::fs::write(
        dir.join("ledger/closed/2026-05.json.sha256"),
        format!("{sha}  2026-05.json\n"),
    )
    .unwrap();
    storage.delete(&statement_path(1)).await.unwrap();

    let book_now = ClosedBook::load(&storage).await.unwrap();
    assert_eq!(book_now.months(), ["2026-05"]);
    assert!(verify(dir).await.ok());

    // An altered old file is refused.
    let path = dir.join("ledger/closed/2026-05.json");
    std::fs::write(
        &path,
        String::from_utf8_lossy(&legacy).replacen('{', "{ ", 1),
    )
    .unwrap();
    assert!(ClosedBook::load(&storage).await.is_err());
    let r = verify(dir).await;
    assert!(
        named(&r, "statement_hash_mismatch", "ledger/closed/2026-05.json"),
        "{:?}",
        kinds(&r)
    );
    std::fs::write(&path, &legacy).unwrap();

    // The next close moves it into the chain first.
    close_month(dir, &book, "2026-06").await.unwrap();
    let after = ClosedBook::load(&storage).await.unwrap();
    assert_eq!(after.months(), ["2026-05", "2026-06"]);
    assert_eq!(after.path("2026-05"), Some(statement_path(1).as_str()));
    assert!(!path.exists());
    let r = verify(dir).await;
    assert!(r.ok(), "{:?}", kinds(&r));
}
