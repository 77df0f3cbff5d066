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
