//! Building rollup files: from commit records' raw files, and by compacting
//! a day's rollup files into one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, Decimal128Builder, Int64Array, RecordBatch, StringBuilder,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Decimal128Type};
use datafusion::prelude::{SessionConfig, SessionContext};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tollgate_storage::{gpu_usage_schema, sha256_hex, tool_calls_schema, CommitRecord};

use super::{check_file, err, schema, RollupFile, FILES};
use crate::context::{register_files, register_pricing_and_views};
use crate::report::facets::{micros, Dim, TEAM};
use crate::report::{int, text};
use crate::{Error, LedgerContext};

/// The tables that carry cost, the ones rollups are made from.
pub(super) const ROLLED_UP: [&str; 2] = ["gpu_usage", "tool_calls"];

/// (hour, tenant, team, dimension, key).
type RowKey = (i64, Arc<str>, Arc<str>, &'static str, Option<String>);

/// A rollup row's sums; cost as `Decimal128(38, 18)`'s integer.
#[derive(Default)]
struct Acc {
    cost: i128,
    gpu_millis: i64,
    events: i64,
    unpriced: i64,
    first: i64,
}

impl Acc {
    fn add(&mut self, cost: i128, gpu: i64, events: i64, unpriced: i64, first: i64) {
        if self.events == 0 || first < self.first {
            self.first = first;
        }
        self.cost += cost;
        self.gpu_millis += gpu;
        self.events += events;
        self.unpriced += unpriced;
    }
}

/// A decimal column's integer at scale 18 (NULL as zero).
fn cost18(b: &RecordBatch, i: usize, row: usize) -> i128 {
    let c = b.column(i);
    match c.data_type() {
        DataType::Decimal128(_, s) if !c.is_null(row) => {
            let v = c.as_primitive::<Decimal128Type>().value(row);
            let s = i32::from(*s);
            if s <= 18 {
                v * 10i128.pow((18 - s) as u32)
            } else {
                v / 10i128.pow((s - 18) as u32)
            }
        }
        _ => 0,
    }
}

/// A session sharing `ctx`'s object stores.
fn session(ctx: &LedgerContext) -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()));
    SessionContext::new_with_config_rt(config, ctx.session().runtime_env())
}

/// Rolls up the cost-carrying files of `records` into hourly facets and
/// writes one file per day (`<version><tag>.parquet`); returns the files and
/// the number of raw events rolled up.
pub(super) async fn roll_up(
    ctx: &LedgerContext,
    records: &[CommitRecord],
    version: u64,
    tag: &str,
) -> Result<(Vec<RollupFile>, u64), Error> {
    let (rows, events) = aggregate(ctx, records).await?;
    let files = write_days(ctx, rows, version, tag).await?;
    Ok((files, events))
}

/// The hourly facets of `records` as one batch in the rollups' schema,
/// written nowhere (`None` without rows), and the events they hold: what a
/// reader adds to the rollups for the records they do not cover yet.
pub(super) async fn tail(
    ctx: &LedgerContext,
    records: &[CommitRecord],
) -> Result<(Option<RecordBatch>, u64), Error> {
    if records.is_empty() {
        return Ok((None, 0));
    }
    let (rows, events) = aggregate(ctx, records).await?;
    if rows.is_empty() {
        return Ok((None, events));
    }
    let rows: Vec<(RowKey, Acc)> = rows.into_iter().collect();
    Ok((Some(to_batch(&rows)?), events))
}

/// The hourly facets of the cost-carrying files of `records`, and the
/// number of raw events they hold.
async fn aggregate(
    ctx: &LedgerContext,
    records: &[CommitRecord],
) -> Result<(BTreeMap<RowKey, Acc>, u64), Error> {
    let s = session(ctx);
    let urls = |table: &str| -> Vec<String> {
        records
            .iter()
            .flat_map(|r| r.files.iter())
            .filter(|f| f.table == table)
            .map(|f| ctx.url(&f.path))
            .collect()
    };
    register_files(
        &s,
        "gpu_usage_files",
        gpu_usage_schema(),
        &urls("gpu_usage"),
    )?;
    register_files(
        &s,
        "tool_calls_files",
        tool_calls_schema(),
        &urls("tool_calls"),
    )?;
    for t in ROLLED_UP {
        // The views read `dt`; these files are named one by one instead.
        s.sql(&format!(
            "CREATE VIEW {t} AS SELECT *, CAST('' AS VARCHAR) AS dt FROM {t}_files"
        ))
        .await
        .map_err(|e| Error::Query(e.to_string()))?;
    }
    register_pricing_and_views(&s, ctx.book()).await?;
    let dims: Vec<&str> = Dim::ALL.iter().map(|d| d.column()).collect();
    let n = dims.len();
    let sql = format!(
        r#"SELECT date_trunc('hour', time), tenant, team, {cols},
                  SUM(cost), CAST(SUM(gpu_millis) AS BIGINT), CAST(COUNT(*) AS BIGINT),
                  CAST(SUM(CASE WHEN priced THEN 0 ELSE 1 END) AS BIGINT), MIN(time)
           FROM costed_usage
           GROUP BY date_trunc('hour', time), tenant, team, {cols}"#,
        cols = dims.join(", ")
    );
    let batches = s
        .sql(&sql)
        .await
        .map_err(|e| Error::Query(e.to_string()))?
        .collect()
        .await
        .map_err(|e| Error::Query(format!("rolling up: {e}")))?;
    let mut names: HashMap<String, Arc<str>> = HashMap::new();
    let mut intern = |s: String| -> Arc<str> {
        names
            .entry(s)
            .or_insert_with_key(|k| Arc::from(k.as_str()))
            .clone()
    };
    let mut rows: BTreeMap<RowKey, Acc> = BTreeMap::new();
    let mut events = 0u64;
    for b in &batches {
        for r in 0..b.num_rows() {
            let hour = micros(b, 0, r).unwrap_or_default();
            let tenant = intern(text(b, 1, r));
            let team = intern(text(b, 2, r));
            let cost = cost18(b, 3 + n, r);
            let (gpu, ev, unpriced) = (int(b, 4 + n, r), int(b, 5 + n, r), int(b, 6 + n, r));
            let first = micros(b, 7 + n, r).unwrap_or(hour);
            events += ev as u64;
            let dims = Dim::ALL.iter().enumerate().map(|(i, d)| {
                let c = b.column(3 + i);
                (d.name(), (!c.is_null(r)).then(|| text(b, 3 + i, r)))
            });
            for (dim, key) in std::iter::once((TEAM, None)).chain(dims) {
                rows.entry((hour, tenant.clone(), team.clone(), dim, key))
                    .or_default()
                    .add(cost, gpu, ev, unpriced, first);
            }
        }
    }
    Ok((rows, events))
}

/// Writes rows (sorted by hour first) as one file per UTC day.
async fn write_days(
    ctx: &LedgerContext,
    rows: BTreeMap<RowKey, Acc>,
    version: u64,
    tag: &str,
) -> Result<Vec<RollupFile>, Error> {
    let mut by_day: BTreeMap<String, Vec<(RowKey, Acc)>> = BTreeMap::new();
    for (k, v) in rows {
        let day = chrono::DateTime::from_timestamp_micros(k.0)
            .unwrap_or_default()
            .date_naive()
            .to_string();
        by_day.entry(day).or_default().push((k, v));
    }
    let mut out = Vec::new();
    for (dt, rows) in by_day {
        let batch = to_batch(&rows)?;
        let path = format!("{FILES}/dt={dt}/{version:020}{tag}.parquet");
        let bytes = parquet_bytes(&batch)?;
        let (size, sha256) = (bytes.len() as u64, sha256_hex(&bytes));
        ctx.storage().write(&path, bytes).await.map_err(err)?;
        out.push(RollupFile {
            path,
            dt,
            rows: rows.len() as u64,
            bytes: size,
            sha256,
        });
    }
    Ok(out)
}

fn to_batch(rows: &[(RowKey, Acc)]) -> Result<RecordBatch, Error> {
    let n = rows.len();
    let mut tenant = StringBuilder::with_capacity(n, n * 8);
    let mut team = StringBuilder::with_capacity(n, n * 8);
    let mut dim = StringBuilder::with_capacity(n, n * 8);
    let mut key = StringBuilder::with_capacity(n, n * 8);
    let mut cost = Decimal128Builder::with_capacity(n)
        .with_precision_and_scale(38, 18)
        .map_err(|e| Error::Query(e.to_string()))?;
    for ((_, t, tm, d, k), a) in rows {
        tenant.append_value(t);
        team.append_value(tm);
        dim.append_value(d);
        key.append_option(k.as_deref());
        cost.append_value(a.cost);
    }
    let hour = TimestampMicrosecondArray::from_iter_values(rows.iter().map(|(k, _)| k.0))
        .with_timezone("UTC");
    let first = TimestampMicrosecondArray::from_iter_values(rows.iter().map(|(_, a)| a.first))
        .with_timezone("UTC");
    let ints = |f: fn(&Acc) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|(_, a)| f(a))))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(hour),
        Arc::new(tenant.finish()),
        Arc::new(team.finish()),
        Arc::new(dim.finish()),
        Arc::new(key.finish()),
        Arc::new(cost.finish()),
        ints(|a| a.gpu_millis),
        ints(|a| a.events),
        ints(|a| a.unpriced),
        Arc::new(first),
    ];
    RecordBatch::try_new(schema(), columns).map_err(|e| Error::Query(e.to_string()))
}

fn parquet_bytes(batch: &RecordBatch) -> Result<Vec<u8>, Error> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema(), Some(props))
        .map_err(|e| Error::Query(e.to_string()))?;
    w.write(batch).map_err(|e| Error::Query(e.to_string()))?;
    w.close().map_err(|e| Error::Query(e.to_string()))?;
    Ok(buf)
}

/// The outcome of [`compact`].
pub(super) struct Compaction {
    /// The files of the new version.
    pub files: Vec<RollupFile>,
    /// Files written by the compaction.
    pub written: Vec<RollupFile>,
    /// Files replaced.
    pub superseded: Vec<String>,
}

/// Merges the files of each day that has more than `at` of them into one
/// (`<version><tag>-c.parquet`): the same facets, summed.
pub(super) async fn compact(
    ctx: &LedgerContext,
    files: Vec<RollupFile>,
    version: u64,
    tag: &str,
    at: usize,
) -> Result<Compaction, Error> {
    let mut by_day: BTreeMap<String, Vec<RollupFile>> = BTreeMap::new();
    for f in files {
        by_day.entry(f.dt.clone()).or_default().push(f);
    }
    let mut out = Compaction {
        files: Vec::new(),
        written: Vec::new(),
        superseded: Vec::new(),
    };
    for (dt, day) in by_day {
        if day.len() <= at {
            out.files.extend(day);
            continue;
        }
        // A file altered since it was listed would be merged into a new file
        // with a new hash: check them first.
        for f in &day {
            check_file(ctx, f).await?;
        }
        let s = session(ctx);
        let urls: Vec<String> = day.iter().map(|f| ctx.url(&f.path)).collect();
        register_files(&s, "day", schema(), &urls)?;
        let batches = s
            .sql(
                r#"SELECT hour, tenant, team, dimension, "key", SUM(cost),
                          CAST(SUM(gpu_millis) AS BIGINT), CAST(SUM(events) AS BIGINT),
                          CAST(SUM(unpriced) AS BIGINT), MIN(first_time)
                   FROM day GROUP BY 1, 2, 3, 4, 5"#,
            )
            .await
            .map_err(|e| Error::Query(e.to_string()))?
            .collect()
            .await
            .map_err(|e| Error::Query(format!("compacting rollups of {dt}: {e}")))?;
        let mut rows: BTreeMap<RowKey, Acc> = BTreeMap::new();
        for b in &batches {
            for r in 0..b.num_rows() {
                let dim = Dim::ALL
                    .iter()
                    .map(|d| d.name())
                    .chain(std::iter::once(TEAM))
                    .find(|n| *n == text(b, 3, r));
                let Some(dim) = dim else { continue };
                let hour = micros(b, 0, r).unwrap_or_default();
                let key = (!b.column(4).is_null(r)).then(|| text(b, 4, r));
                rows.entry((
                    hour,
                    Arc::from(text(b, 1, r)),
                    Arc::from(text(b, 2, r)),
                    dim,
                    key,
                ))
                .or_default()
                .add(
                    cost18(b, 5, r),
                    int(b, 6, r),
                    int(b, 7, r),
                    int(b, 8, r),
                    micros(b, 9, r).unwrap_or(hour),
                );
            }
        }
        let written = write_days(ctx, rows, version, &format!("{tag}-c")).await?;
        out.superseded.extend(day.into_iter().map(|f| f.path));
        out.files.extend(written.iter().cloned());
        out.written.extend(written);
    }
    Ok(out)
}
