//! Every view plans and runs, also over an audit log with no files yet.

use tollgate_ledger::{context::view_names, LedgerContext, PriceBook, PricingConfig};
use tollgate_storage::StorageConfig;

#[tokio::test]
async fn every_view_runs_on_an_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let storage = StorageConfig {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let book = PriceBook::new(PricingConfig::default()).unwrap();
    let ctx = LedgerContext::open(&storage, &book).await.unwrap();
    for view in view_names() {
        let rows: usize = ctx
            .query(&format!("SELECT * FROM {view}"))
            .await
            .unwrap_or_else(|e| panic!("{view}: {e}"))
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows, 0, "{view}");
    }
    let missing = tempfile::tempdir().unwrap().path().join("nope");
    let err = LedgerContext::open(
        &StorageConfig {
            data_dir: missing,
            ..Default::default()
        },
        &book,
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("no audit log there yet"), "{err}");
}

/// A context that lives long (the rollup maintainer in `run`, the alert
/// evaluator, `serve`'s refresher) reads commits made after it opened.
/// DataFusion 55 caches a table's file listing for ever by default; with
/// that cache a second count here was still the first.
#[tokio::test]
async fn a_long_lived_context_sees_commits_made_after_it_opened() {
    use arrow::array::Int64Array;

    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig::local(dir.path());
    let storage = tollgate_storage::Storage::open(&config, "test").unwrap();
    let book = tollgate_fixtures::demo_price_book().unwrap();
    let all = crate::rollups::events();
    let mut offset = 0;
    crate::rollups::commit_share(&storage, &all, 0, 2, &mut offset).await;
    let ctx = LedgerContext::open(&config, &book).await.unwrap();
    let count = |sql: &'static str| {
        let ctx = &ctx;
        async move {
            let batches = ctx.query(sql).await.unwrap();
            batches[0]
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .value(0)
        }
    };
    let first = count("SELECT COUNT(*) FROM events").await;
    assert_eq!(first as usize, all.len().div_ceil(2));
    let costed = count("SELECT COUNT(*) FROM costed_usage").await;
    crate::rollups::commit_share(&storage, &all, 1, 2, &mut offset).await;
    assert_eq!(
        count("SELECT COUNT(*) FROM events").await as usize,
        all.len(),
        "the second commit's files are not read"
    );
    assert!(count("SELECT COUNT(*) FROM costed_usage").await > costed);
}
