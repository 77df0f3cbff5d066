//! Group commit of an audit table against its peer, one file per entry
//! (how `query_log` was written before it had a chain: a Parquet file per
//! entry, create-if-absent, no record), both in the same run on the same
//! storage: 64 clients at once, each writing entries one after another as
//! a request would (it waits for its entry before the next). Prints
//! entries per second of each, the ratio, and the records and files the
//! chain took. Run: `cargo bench -p tollgate-ingest --bench audit_log`.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;
use tollgate_storage::audit_log::AuditLog;
use tollgate_storage::Storage;
use tollgate_storage::StorageConfig;

const CLIENTS: usize = 64;
const PER_CLIENT: usize = 40;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("query_id", DataType::Utf8, false),
        Field::new("sql_redacted", DataType::Utf8, true),
        Field::new("dt", DataType::Utf8, false),
    ]))
}

fn entry(id: &str) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(vec![id])),
            Arc::new(StringArray::from(vec![Some(
                "SELECT team, sum(cost) FROM chargeback WHERE month = '2026-11' GROUP BY team",
            )])),
            Arc::new(StringArray::from(vec!["2026-11-24"])),
        ],
    )
    .expect("a valid batch")
}

fn parquet(batch: &RecordBatch) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), None).expect("a writer");
    w.write(batch).expect("written");
    w.close().expect("closed");
    buf
}

async fn run<F, Fut>(write: F) -> f64
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let write = write.clone();
            tokio::spawn(async move {
                for i in 0..PER_CLIENT {
                    write(c, i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("a client finished");
    }
    (CLIENTS * PER_CLIENT) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let day = NaiveDate::from_ymd_opt(2026, 11, 24).expect("a date");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let open = |name: &str| {
            Storage::open(&StorageConfig::local(&dir.path().join(name)), "bench")
                .expect("the storage")
        };

        let plain = Arc::new(open("plain"));
        let per_entry = run(move |c, i| {
            let plain = plain.clone();
            async move {
                let path = format!("audit/queries/dt={day}/{c:03}-{i:05}.parquet");
                let bytes = parquet(&entry(&format!("{c}-{i}")));
                assert!(plain.create(&path, bytes).await.expect("written"));
            }
        })
        .await;

        let log = AuditLog::new(open("chained"), "query_log", "audit/queries", schema(), "bench");
        let writer = log.clone();
        let grouped = run(move |c, i| {
            let log = writer.clone();
            async move {
                log.append(day, entry(&format!("{c}-{i}"))).await.expect("committed");
            }
        })
        .await;
        let records = std::fs::read_dir(dir.path().join("chained/audit/_commits/query_log"))
            .map(|d| d.count())
            .unwrap_or(0);
        let files = log.files().await.expect("the chain").len();
        let entries = CLIENTS * PER_CLIENT;
        println!("audit_log: {CLIENTS} clients x {PER_CLIENT} entries = {entries} entries, local storage");
        println!("  one file per entry (no chain):   {per_entry:>10.0} entries/s");
        println!("  chained, group commit:           {grouped:>10.0} entries/s");
        println!(
            "  ratio: {:.2}x; the chain took {records} records, appends and compactions ({:.1} entries per record) and lists {files} files",
            grouped / per_entry,
            entries as f64 / records.max(1) as f64
        );
    });
}
