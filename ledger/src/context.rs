//! The DataFusion context over the audit log: the four Parquet tables (with
//! their `dt=` partitions, so that a filter on `dt` skips whole days), the
//! price book as tables, and the named views the reports read.
//!
//! | view | one row per |
//! |---|---|
//! | `gpu_costed` | GPU usage event, priced at its interval's start |
//! | `call_costed` | finished tool call (`phase = 'end'`), tokens and tool fee priced at its end |
//! | `costed_usage` | both, in common columns: the ledger's source of money |
//! | `daily_spend` | (UTC day, tenant, team, user, environment, workload kind, GPU model, tier, tool, model) |
//! | `tool_latency` | (tenant, tool): calls, P50/P95/P99 latency, error rate |
//!
//! A cost is `Decimal128(38, 18)`; usage without a rate in force has a NULL
//! cost and `priced = false`, so reports can name it instead of dropping it.

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use tollgate_storage::StorageConfig;
use tollgate_storage::{
    dead_letters_schema, events_schema, gpu_usage_schema, tool_calls_schema, Storage,
};

use crate::rollup::{self, Manifest, Refresh};
use crate::{rates, Error, PriceBook};

/// The views, in creation order.
const VIEWS: &[(&str, &str)] = &[
    (
        "gpu_costed",
        r#"SELECT u.event_id, u.interval_start AS time, u.tenant, u.team, u."user", u.environment,
               u.workload_id, u.workload_kind, u.gpu_model, u.pricing_tier, u.gpu_millis,
               CAST(CAST(u.gpu_millis AS DECIMAL(20, 0)) * r.per_gpu_milli AS DECIMAL(38, 18)) AS cost,
               r.per_gpu_milli IS NOT NULL AS priced, u.dt
        FROM gpu_usage u
        LEFT JOIN gpu_rates r
          ON u.gpu_model = r.gpu_model AND u.pricing_tier = r.pricing_tier
         AND u.interval_start >= r.effective_from AND u.interval_start < r.effective_to"#,
    ),
    (
        "call_costed",
        r#"SELECT c.event_id, c.time, c.tenant, c.team, c."user", c.environment, c.mcp_server,
               c.tool, c.model, c.input_tokens, c.output_tokens, c.status, c.latency_ms,
               CAST(CASE WHEN c.model IS NULL THEN CAST(0 AS DECIMAL(38, 18))
                    ELSE CAST(COALESCE(c.input_tokens, 0) AS DECIMAL(20, 0)) * t.per_input_token
                       + CAST(COALESCE(c.output_tokens, 0) AS DECIMAL(20, 0)) * t.per_output_token
                    END
                    + COALESCE(f.per_call, CAST(0 AS DECIMAL(38, 18))) AS DECIMAL(38, 18)) AS cost,
               (c.model IS NULL OR t.per_input_token IS NOT NULL) AS priced, c.dt
        FROM tool_calls c
        LEFT JOIN token_rates t
          ON c.model = t.model AND c.time >= t.effective_from AND c.time < t.effective_to
        LEFT JOIN tool_fees f
          ON c.tool = f.tool AND c.time >= f.effective_from AND c.time < f.effective_to
        WHERE c.phase = 'end'"#,
    ),
    (
        "costed_usage",
        r#"SELECT event_id, time, tenant, team, "user", environment, 'gpu' AS kind,
               workload_id, workload_kind, gpu_model, pricing_tier,
               CAST(NULL AS VARCHAR) AS tool, CAST(NULL AS VARCHAR) AS model,
               gpu_millis, CAST(0 AS BIGINT) AS tokens, cost, priced, dt
        FROM gpu_costed
        UNION ALL
        SELECT event_id, time, tenant, team, "user", environment, 'tool_call' AS kind,
               CAST(NULL AS VARCHAR) AS workload_id, 'tool_call' AS workload_kind,
               CAST(NULL AS VARCHAR) AS gpu_model, CAST(NULL AS VARCHAR) AS pricing_tier,
               tool, model, CAST(0 AS BIGINT) AS gpu_millis,
               CAST(COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0) AS BIGINT) AS tokens,
               cost, priced, dt
        FROM call_costed"#,
    ),
    (
        "daily_spend",
        r#"SELECT date_trunc('day', time) AS day, tenant, team, "user", environment, workload_kind,
               gpu_model, pricing_tier, tool, model,
               SUM(cost) AS cost, SUM(gpu_millis) AS gpu_millis, SUM(tokens) AS tokens,
               COUNT(*) AS events
        FROM costed_usage
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10"#,
    ),
    (
        "tool_latency",
        r#"SELECT tenant, tool, COUNT(*) AS calls,
               approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50_ms,
               approx_percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_ms,
               approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99_ms,
               AVG(CASE WHEN status = 'ok' THEN 0.0 ELSE 1.0 END) AS error_rate
        FROM call_costed
        WHERE latency_ms IS NOT NULL
        GROUP BY tenant, tool"#,
    ),
];

/// The names of the views [`LedgerContext`] registers.
pub fn view_names() -> Vec<&'static str> {
    VIEWS.iter().map(|(n, _)| *n).collect()
}

/// A DataFusion session over one audit log, with the price book and views.
pub struct LedgerContext {
    ctx: SessionContext,
    storage: Storage,
    /// `file:///abs/dir` or the storage URL: files are `{base}/{path}`.
    base: String,
    book: PriceBook,
    /// The rollups the reports read, when [`LedgerContext::use_rollups`]
    /// found them current.
    rollups: Option<Manifest>,
    /// Facets of the commit records the rollups do not cover yet (read-only
    /// readers: [`LedgerContext::read_snapshot`]).
    tail: Option<arrow::array::RecordBatch>,
}

/// The settings every ledger session uses.
fn session_config() -> SessionConfig {
    SessionConfig::new()
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .with_information_schema(true)
}

/// Parquet footers and per-file statistics, shared by every session this
/// process opens over the same storage.
///
/// A session is opened per request (the query API opens one per principal
/// and call). Without sharing, every request read the footer of every file
/// again and collected its statistics: in a debug build that was most of a
/// small query's time, and against S3 it is one ranged GET per file. The
/// shared entries are checked against each file's size and modification
/// time on every use, and both caches keep DataFusion's memory bounds (50
/// MiB of metadata, 20 MiB of statistics per storage).
///
/// File listings are not cached at all. DataFusion 55 keeps a table's
/// listing for ever by default (`list_files_cache_ttl = None`), so a
/// context that lives long (the alert evaluator, the quota and admission
/// API) would never read a later commit's files in its raw reads; every
/// scan lists the table again instead.
mod file_caches {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};

    use datafusion::execution::cache::cache_manager::{
        CacheManager, CacheManagerConfig, FileMetadataCache, FileStatisticsCache,
    };

    type Shared = (Option<Arc<FileStatisticsCache>>, Arc<FileMetadataCache>);

    /// The cache configuration of a session over the storage named `key`.
    pub(super) fn config(key: &str) -> CacheManagerConfig {
        static BY_STORAGE: OnceLock<Mutex<HashMap<String, Shared>>> = OnceLock::new();
        let defaults = CacheManagerConfig::default();
        let mut map = BY_STORAGE
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let shared = match map.get(key) {
            Some(s) => s.clone(),
            None => match CacheManager::try_new(&defaults) {
                Ok(m) => {
                    let s = (m.get_file_statistic_cache(), m.get_file_metadata_cache());
                    map.insert(key.to_string(), s.clone());
                    s
                }
                // Not reached with the defaults; the session then has
                // caches of its own, but still no listing cache.
                Err(_) => return defaults.with_list_files_cache_limit(0),
            },
        };
        defaults
            .with_file_statistics_cache(shared.0)
            .with_file_metadata_cache(Some(shared.1))
            .with_list_files_cache_limit(0)
    }
}

/// How a session is set up beyond the defaults: for a principal's session,
/// the schema its tables live in and a bound on the memory its queries hold.
#[derive(Default)]
pub struct SessionSetup {
    /// The default schema (every table and view is registered in it).
    pub schema: Option<Arc<dyn datafusion::catalog::SchemaProvider>>,
    /// Bytes a query's operators (sorts, joins, aggregations) may hold.
    pub memory_limit: Option<usize>,
}

/// Registers the price book as tables and creates the views over the
/// (already registered) `gpu_usage` and `tool_calls` tables.
pub(crate) async fn register_pricing_and_views(
    ctx: &SessionContext,
    book: &PriceBook,
) -> Result<(), Error> {
    ctx.register_batch("gpu_rates", rates::gpu_rates(book)?)
        .map_err(|e| Error::Query(e.to_string()))?;
    ctx.register_batch("token_rates", rates::token_rates(book)?)
        .map_err(|e| Error::Query(e.to_string()))?;
    ctx.register_batch("tool_fees", rates::tool_fees(book)?)
        .map_err(|e| Error::Query(e.to_string()))?;
    for (name, sql) in VIEWS {
        ctx.sql(&format!("CREATE VIEW {name} AS {sql}"))
            .await
            .map_err(|e| Error::Query(format!("view {name}: {e}")))?;
    }
    Ok(())
}

/// Registers `files` (URLs of Parquet files of one schema) as table `name`;
/// no files gives an empty table.
pub fn register_files(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    files: &[String],
) -> Result<(), Error> {
    let q = |e: datafusion::error::DataFusionError| Error::Query(format!("{name}: {e}"));
    let _ = ctx.deregister_table(name);
    if files.is_empty() {
        let empty = MemTable::try_new(schema, vec![vec![]]).map_err(q)?;
        ctx.register_table(name, Arc::new(empty)).map_err(q)?;
        return Ok(());
    }
    let urls = files
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(q)?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(q)?;
    ctx.register_table(name, Arc::new(table)).map_err(q)?;
    Ok(())
}

impl LedgerContext {
    /// Opens the tables of `storage` (its `url`, or `data_dir` on the local
    /// filesystem) and registers the price book and the views. Reports read
    /// the raw tables until [`LedgerContext::use_rollups`] is called.
    pub async fn open(storage: &StorageConfig, book: &PriceBook) -> Result<Self, Error> {
        Self::open_with(storage, book, SessionSetup::default()).await
    }

    /// As [`open`](Self::open), set up by `setup`. With a schema, every
    /// table and view is registered in it, so a schema that wraps the tables
    /// it hands out (the queries stage's scope wall) sees every scan, the
    /// views' included.
    pub async fn open_with(
        storage: &StorageConfig,
        book: &PriceBook,
        setup: SessionSetup,
    ) -> Result<Self, Error> {
        let key = storage
            .url
            .clone()
            .unwrap_or_else(|| storage.data_dir.display().to_string());
        let mut rt = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_cache_manager(file_caches::config(&key));
        if let Some(bytes) = setup.memory_limit {
            rt = rt.with_memory_limit(bytes, 1.0);
        }
        let rt = rt
            .build_arc()
            .map_err(|e| Error::Query(format!("session runtime: {e}")))?;
        let ctx = SessionContext::new_with_config_rt(session_config(), rt);
        if let Some(schema) = setup.schema {
            let options = ctx.state().config().options().catalog.clone();
            let catalog = ctx
                .catalog(&options.default_catalog)
                .ok_or_else(|| Error::Query(format!("no catalog {}", options.default_catalog)))?;
            catalog
                .register_schema(&options.default_schema, schema)
                .map_err(|e| Error::Query(format!("default schema: {e}")))?;
        }
        let opened = |s: &StorageConfig| {
            Storage::open(s, "ledger").map_err(|e| Error::Storage(e.to_string()))
        };
        let (base, opened) = match &storage.url {
            Some(u) => {
                let url = url::Url::parse(u)
                    .map_err(|e| Error::Storage(format!("storage.url {u:?}: {e}")))?;
                // The same object store (and options) the pipeline writes with.
                let opened = opened(storage)?;
                let mut root = url.clone();
                root.set_path("");
                ctx.register_object_store(&root, opened.object_store());
                (u.trim_end_matches('/').to_string(), opened)
            }
            None => {
                let dir = &storage.data_dir;
                let abs = std::fs::canonicalize(dir).map_err(|e| {
                    Error::Storage(format!("{}: {e} (no audit log there yet?)", dir.display()))
                })?;
                for t in tollgate_storage::TABLES {
                    let d = abs.join("tables").join(t);
                    std::fs::create_dir_all(&d)
                        .map_err(|e| Error::Storage(format!("{}: {e}", d.display())))?;
                }
                (format!("file://{}", abs.display()), opened(storage)?)
            }
        };
        let tables: [(&str, SchemaRef); 4] = [
            ("events", events_schema()),
            ("tool_calls", tool_calls_schema()),
            ("gpu_usage", gpu_usage_schema()),
            ("dead_letters", dead_letters_schema()),
        ];
        for (name, schema) in tables {
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet")
                .with_table_partition_cols(vec![("dt".to_string(), DataType::Utf8)]);
            ctx.register_listing_table(
                name,
                format!("{base}/tables/{name}/"),
                options,
                Some(schema),
                None,
            )
            .await
            .map_err(|e| Error::Query(format!("registering {name}: {e}")))?;
        }
        register_pricing_and_views(&ctx, book).await?;
        Ok(Self {
            ctx,
            storage: opened,
            base,
            book: book.clone(),
            rollups: None,
            tail: None,
        })
    }

    /// Brings the rollups up to date with the commit log (rolling up only
    /// the commits they do not cover yet) and makes the reports read them.
    /// When they were priced with another price book they are not used
    /// (the reports read the raw tables) until `tollgate ledger rebuild`.
    pub async fn use_rollups(&mut self) -> Result<Refresh, Error> {
        let r = rollup::refresh(self).await?;
        self.rollups = r.manifest.clone().filter(|_| r.current);
        self.tail = None;
        Ok(r)
    }

    /// Reads `snapshot`'s rollups and tail (taken by another context's
    /// [`read_snapshot`](Self::read_snapshot)) without refreshing them: for
    /// sessions that must not write, such as a principal's scoped session.
    /// `None` reads the raw tables.
    pub fn read_rollups(&mut self, snapshot: Option<rollup::Snapshot>) {
        (self.rollups, self.tail) = match snapshot {
            Some(s) => (Some(s.manifest), s.tail),
            None => (None, None),
        };
    }

    /// Reads the newest rollups without writing anything: the records they
    /// do not cover yet are rolled up in memory and added to what reports
    /// read. Returns the snapshot, or why the raw tables are read instead.
    pub async fn read_snapshot(
        &mut self,
    ) -> Result<Result<rollup::Snapshot, rollup::Unusable>, Error> {
        let s = rollup::snapshot(self).await?;
        self.read_rollups(s.as_ref().ok().cloned());
        Ok(s)
    }

    /// The facets of the records the rollups do not cover yet, if any.
    pub fn rollup_tail(&self) -> Option<&arrow::array::RecordBatch> {
        self.tail.as_ref()
    }

    /// The session, for ad-hoc SQL over the tables and views.
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// The storage the tables are in.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The URL of a file under the storage root.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// The price book.
    pub fn book(&self) -> &PriceBook {
        &self.book
    }

    /// The rollups the reports read (`None`: the raw tables).
    pub fn rollups(&self) -> Option<&Manifest> {
        self.rollups.as_ref()
    }

    /// Runs `sql` and collects the result.
    pub async fn query(&self, sql: &str) -> Result<Vec<arrow::array::RecordBatch>, Error> {
        self.ctx
            .sql(sql)
            .await
            .map_err(|e| Error::Query(e.to_string()))?
            .collect()
            .await
            .map_err(|e| Error::Query(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::file_caches;

    #[test]
    fn sessions_over_one_storage_share_footers_and_statistics_and_cache_no_listing() {
        let (a, b) = (
            file_caches::config("s3://bucket/one"),
            file_caches::config("s3://bucket/one"),
        );
        let other = file_caches::config("s3://bucket/two");
        let metadata = |c: &datafusion::execution::cache::cache_manager::CacheManagerConfig| {
            c.file_metadata_cache
                .clone()
                .expect("a shared metadata cache")
        };
        let statistics = |c: &datafusion::execution::cache::cache_manager::CacheManagerConfig| {
            c.file_statistics_cache
                .clone()
                .expect("a shared statistics cache")
        };
        assert!(Arc::ptr_eq(&metadata(&a), &metadata(&b)));
        assert!(Arc::ptr_eq(&statistics(&a), &statistics(&b)));
        assert!(!Arc::ptr_eq(&metadata(&a), &metadata(&other)));
        assert!(!Arc::ptr_eq(&statistics(&a), &statistics(&other)));
        // No listing is cached (the integration test
        // a_long_lived_context_sees_commits_made_after_it_opened fails with
        // DataFusion's default listing cache).
        assert_eq!((a.list_files_cache_limit, b.list_files_cache_limit), (0, 0));
        assert!(a.list_files_cache.is_none());
    }
}
