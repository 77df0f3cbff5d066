//! Facets: the sums every report is made of. A facet is a team's cost,
//! GPU time, event count and first usage time over a time range, either in
//! total (dimension `team`) or for one key of one dimension (a user, an
//! environment, a tool...). Facets add up, so a range can be answered partly
//! by the hourly rollups (its whole hours) and partly by the raw tables (the
//! rest), and the parts summed.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimestampMicrosecondType};
use chrono::{DateTime, Duration, Utc};
use datafusion::prelude::{col, lit, Expr};
use datafusion::scalar::ScalarValue;
use rust_decimal::Decimal;

use super::{int, money, text};
use crate::{Error, LedgerContext};

/// One microsecond-resolution hour.
pub(crate) const HOUR_US: i64 = 3_600_000_000;

/// A dimension a facet can break a team's usage down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dim {
    /// The user (NULL when the event names none).
    User,
    /// The environment.
    Environment,
    /// The workload kind (`idle`, `tool_call`, ...).
    WorkloadKind,
    /// The GPU model (NULL for tool calls).
    GpuModel,
    /// The workload id (NULL for tool calls).
    Workload,
    /// The tool (NULL for GPU usage).
    Tool,
    /// The model (NULL for GPU usage and calls without a model).
    Model,
}

impl Dim {
    /// Every dimension; the rollups hold all of them.
    pub const ALL: [Dim; 7] = [
        Dim::User,
        Dim::Environment,
        Dim::WorkloadKind,
        Dim::GpuModel,
        Dim::Workload,
        Dim::Tool,
        Dim::Model,
    ];

    /// The name stored in the rollups' `dimension` column.
    pub fn name(self) -> &'static str {
        match self {
            Dim::User => "user",
            Dim::Environment => "environment",
            Dim::WorkloadKind => "workload_kind",
            Dim::GpuModel => "gpu_model",
            Dim::Workload => "workload",
            Dim::Tool => "tool",
            Dim::Model => "model",
        }
    }

    /// The `costed_usage` column it groups by.
    pub(crate) fn column(self) -> &'static str {
        match self {
            Dim::User => "\"user\"",
            Dim::Environment => "environment",
            Dim::WorkloadKind => "workload_kind",
            Dim::GpuModel => "gpu_model",
            Dim::Workload => "workload_id",
            Dim::Tool => "tool",
            Dim::Model => "model",
        }
    }
}

/// The name of the team-total facet's dimension.
pub const TEAM: &str = "team";

/// What a facet sums.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sums {
    /// Exact cost (unrounded).
    pub cost: Decimal,
    /// GPU-milliseconds.
    pub gpu_millis: i64,
    /// Costed events.
    pub events: i64,
    /// Events without a rate in force.
    pub unpriced: i64,
    /// The earliest usage time, microseconds since the epoch.
    pub first_us: Option<i64>,
}

impl Sums {
    fn add(&mut self, o: &Sums) {
        self.cost += o.cost;
        self.gpu_millis += o.gpu_millis;
        self.events += o.events;
        self.unpriced += o.unpriced;
        self.first_us = match (self.first_us, o.first_us) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// (tenant, team, dimension, key, recent).
pub type FacetKey = (String, String, &'static str, Option<String>, bool);

/// Facets of one range, merged from whatever answered them.
#[derive(Debug, Default)]
pub struct Facets {
    /// The sums by facet.
    pub map: BTreeMap<FacetKey, Sums>,
}

impl Facets {
    fn add(&mut self, key: FacetKey, s: &Sums) {
        self.map.entry(key).or_default().add(s);
    }

    /// The team totals: ((tenant, team), recent) -> sums.
    pub fn teams(&self) -> impl Iterator<Item = (&String, &String, bool, &Sums)> {
        self.map
            .iter()
            .filter(|(k, _)| k.2 == TEAM)
            .map(|(k, v)| (&k.0, &k.1, k.4, v))
    }

    /// One dimension's facets: (tenant, team, key, recent, sums).
    pub fn of(
        &self,
        dim: Dim,
    ) -> impl Iterator<Item = (&String, &String, &Option<String>, bool, &Sums)> {
        let name = dim.name();
        self.map
            .iter()
            .filter(move |(k, _)| k.2 == name)
            .map(|(k, v)| (&k.0, &k.1, &k.3, k.4, v))
    }
}

/// Half-open `[start, end)` ranges in microseconds.
pub(crate) type Ranges = Vec<(i64, i64)>;

fn floor_hour(us: i64) -> i64 {
    us.div_euclid(HOUR_US) * HOUR_US
}

fn ceil_hour(us: i64) -> i64 {
    -floor_hour(-us)
}

/// Splits `[from, to)` (microseconds) into the whole hours the rollups can
/// answer and the ranges the raw tables must: the partial hours at either
/// end, and with a `split` (facets tell `time > split` apart) the hour that
/// holds it, since its rows fall on both sides.
pub(crate) fn plan(from: i64, to: i64, split: Option<i64>) -> (Ranges, Ranges) {
    let (mut whole, mut raw) = (Vec::new(), Vec::new());
    if to <= from {
        return (whole, raw);
    }
    let (lo, hi) = (ceil_hour(from), floor_hour(to));
    if lo >= hi {
        raw.push((from, to));
        return (whole, raw);
    }
    raw.push((from, lo));
    whole.push((lo, hi));
    raw.push((hi, to));
    if let Some(s) = split {
        let b = floor_hour(s);
        if b + HOUR_US > lo && b < hi {
            whole = vec![(lo, b), (b + HOUR_US, hi)];
            raw.push((b.max(lo), (b + HOUR_US).min(hi)));
        }
    }
    let mut whole: Vec<_> = whole.into_iter().filter(|(a, b)| a < b).collect();
    whole.sort_unstable();
    raw.retain(|(a, b)| a < b);
    raw.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::new();
    for (a, b) in raw {
        match merged.last_mut() {
            Some(last) if last.1 >= a => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    (whole, merged)
}

/// A timestamp literal of the tables' type.
pub(crate) fn ts_us(us: i64) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(us),
        Some("UTC".into()),
    ))
}

/// `column` within any of `ranges`.
fn within(column: &str, ranges: &[(i64, i64)]) -> Expr {
    ranges
        .iter()
        .map(|(a, b)| col(column).gt_eq(ts_us(*a)).and(col(column).lt(ts_us(*b))))
        .reduce(Expr::or)
        .unwrap_or(lit(false))
}

fn recent(column: &str, split: Option<i64>) -> Expr {
    match split {
        Some(s) => col(column).gt(ts_us(s)),
        None => lit(false),
    }
}

fn date(us: i64) -> String {
    DateTime::from_timestamp_micros(us)
        .unwrap_or_default()
        .date_naive()
        .to_string()
}

/// Reads a microsecond timestamp column.
pub(crate) fn micros(b: &RecordBatch, i: usize, row: usize) -> Option<i64> {
    let c = b.column(i);
    match c.data_type() {
        DataType::Timestamp(_, _) if !c.is_null(row) => {
            Some(c.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        _ => None,
    }
}

/// Reads a boolean column (NULL as false).
fn flag(b: &RecordBatch, i: usize, row: usize) -> bool {
    let c = b.column(i);
    !c.is_null(row) && c.as_boolean().value(row)
}

fn key_of(b: &RecordBatch, i: usize, row: usize) -> Option<String> {
    (!b.column(i).is_null(row)).then(|| text(b, i, row))
}

/// The facets of `[from, to)` for the team totals and `dims`, with `recent`
/// telling `time > split` apart: from the rollups for the whole hours they
/// cover when the context uses them, from the raw tables for the rest.
pub async fn facets(
    ctx: &LedgerContext,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    split: Option<DateTime<Utc>>,
    dims: &[Dim],
) -> Result<Facets, Error> {
    let (from, to) = (from.timestamp_micros(), to.timestamp_micros());
    let split = split.map(|s| s.timestamp_micros());
    let mut out = Facets::default();
    let raw = match ctx.rollups() {
        Some(_) => {
            let (whole, raw) = plan(from, to, split);
            from_rollups(ctx, &whole, split, dims, &mut out).await?;
            raw
        }
        None => vec![(from, to)],
    };
    from_raw(ctx, &raw, split, dims, &mut out).await?;
    Ok(out)
}

async fn from_raw(
    ctx: &LedgerContext,
    ranges: &[(i64, i64)],
    split: Option<i64>,
    dims: &[Dim],
    out: &mut Facets,
) -> Result<(), Error> {
    let (Some(first), Some(last)) = (
        ranges.iter().map(|r| r.0).min(),
        ranges.iter().map(|r| r.1).max(),
    ) else {
        return Ok(());
    };
    let q = |e: datafusion::error::DataFusionError| Error::Query(e.to_string());
    // GPU rows are timed by their interval's start, which can be up to a
    // day or two before the day (dt) the event was stored under.
    let last_dt = date(last + Duration::days(2).num_microseconds().unwrap_or(0));
    let df = ctx
        .session()
        .table("costed_usage")
        .await
        .map_err(q)?
        .filter(
            col("dt")
                .gt_eq(lit(date(first)))
                .and(col("dt").lt_eq(lit(last_dt)))
                .and(within("time", ranges)),
        )
        .map_err(q)?
        .with_column("recent", recent("time", split))
        .map_err(q)?;
    let _ = ctx.session().deregister_table("facet_raw");
    ctx.session()
        .register_table("facet_raw", df.into_view())
        .map_err(q)?;
    let cols: Vec<&str> = dims.iter().map(|d| d.column()).collect();
    let group = if cols.is_empty() {
        String::new()
    } else {
        format!("{}, ", cols.join(", "))
    };
    let batches = ctx
        .query(&format!(
            r#"SELECT tenant, team, {group}recent,
                      SUM(cost), CAST(SUM(gpu_millis) AS BIGINT), CAST(COUNT(*) AS BIGINT),
                      CAST(SUM(CASE WHEN priced THEN 0 ELSE 1 END) AS BIGINT), MIN(time)
               FROM facet_raw
               GROUP BY tenant, team, {group}recent"#
        ))
        .await?;
    let n = dims.len();
    for b in &batches {
        for r in 0..b.num_rows() {
            let (tenant, team) = (text(b, 0, r), text(b, 1, r));
            let is_recent = flag(b, 2 + n, r);
            let sums = Sums {
                cost: money(b, 3 + n, r),
                gpu_millis: int(b, 4 + n, r),
                events: int(b, 5 + n, r),
                unpriced: int(b, 6 + n, r),
                first_us: micros(b, 7 + n, r),
            };
            for (i, d) in dims.iter().enumerate() {
                out.add(
                    (
                        tenant.clone(),
                        team.clone(),
                        d.name(),
                        key_of(b, 2 + i, r),
                        is_recent,
                    ),
                    &sums,
                );
            }
            out.add((tenant, team, TEAM, None, is_recent), &sums);
        }
    }
    Ok(())
}

/// The `'static` name of a stored dimension.
fn dim_name(name: &str) -> Option<&'static str> {
    if name == TEAM {
        return Some(TEAM);
    }
    Dim::ALL.iter().map(|d| d.name()).find(|n| *n == name)
}

async fn from_rollups(
    ctx: &LedgerContext,
    hours: &[(i64, i64)],
    split: Option<i64>,
    dims: &[Dim],
    out: &mut Facets,
) -> Result<(), Error> {
    let Some(manifest) = ctx.rollups() else {
        return Ok(());
    };
    let (Some(first), Some(last)) = (
        hours.iter().map(|r| r.0).min(),
        hours.iter().map(|r| r.1).max(),
    ) else {
        return Ok(());
    };
    let (first_dt, last_dt) = (date(first), date(last - 1));
    let selected: Vec<&crate::rollup::RollupFile> = manifest
        .files
        .iter()
        .filter(|f| f.dt >= first_dt && f.dt <= last_dt)
        .collect();
    // No figure from a file that differs from what the manifest recorded.
    crate::rollup::check_files(ctx, &selected).await?;
    let files: Vec<String> = selected.iter().map(|f| ctx.url(&f.path)).collect();
    let q = |e: datafusion::error::DataFusionError| Error::Query(e.to_string());
    crate::context::register_files(
        ctx.session(),
        "facet_rollup_files",
        crate::rollup::schema(),
        &files,
    )?;
    let mut names: Vec<Expr> = dims.iter().map(|d| lit(d.name())).collect();
    names.push(lit(TEAM));
    let mut rows = ctx.session().table("facet_rollup_files").await.map_err(q)?;
    if let Some(tail) = ctx.rollup_tail() {
        // The records the rollups do not cover yet, rolled up in memory:
        // registered like the files, so a scoped session's wall applies.
        let mem = datafusion::datasource::MemTable::try_new(
            crate::rollup::schema(),
            vec![vec![tail.clone()]],
        )
        .map_err(q)?;
        let _ = ctx.session().deregister_table("facet_rollup_tail");
        ctx.session()
            .register_table("facet_rollup_tail", Arc::new(mem))
            .map_err(q)?;
        let tail = ctx.session().table("facet_rollup_tail").await.map_err(q)?;
        rows = rows.union(tail).map_err(q)?;
    }
    let df = rows
        .filter(
            col("dimension")
                .in_list(names, false)
                .and(within("hour", hours)),
        )
        .map_err(q)?
        .with_column("recent", recent("first_time", split))
        .map_err(q)?;
    let _ = ctx.session().deregister_table("facet_rollup");
    ctx.session()
        .register_table("facet_rollup", df.into_view())
        .map_err(q)?;
    let batches = ctx
        .query(
            r#"SELECT tenant, team, dimension, "key", recent,
                      SUM(cost), CAST(SUM(gpu_millis) AS BIGINT), CAST(SUM(events) AS BIGINT),
                      CAST(SUM(unpriced) AS BIGINT), MIN(first_time)
               FROM facet_rollup
               GROUP BY tenant, team, dimension, "key", recent"#,
        )
        .await?;
    for b in &batches {
        for r in 0..b.num_rows() {
            let Some(dim) = dim_name(&text(b, 2, r)) else {
                continue;
            };
            let sums = Sums {
                cost: money(b, 5, r),
                gpu_millis: int(b, 6, r),
                events: int(b, 7, r),
                unpriced: int(b, 8, r),
                first_us: micros(b, 9, r),
            };
            out.add(
                (
                    text(b, 0, r),
                    text(b, 1, r),
                    dim,
                    key_of(b, 3, r),
                    flag(b, 4, r),
                ),
                &sums,
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The whole hours and the raw ranges cover `[from, to)` exactly,
        /// without overlap, and no whole hour holds rows on both sides of
        /// the split.
        #[test]
        fn plan_covers_the_range_once(
            from in 0i64..(50 * HOUR_US),
            len in 0i64..(80 * HOUR_US),
            split in proptest::option::of(0i64..(140 * HOUR_US)),
            aligned in any::<bool>(),
        ) {
            let (from, split) = if aligned {
                (floor_hour(from), split.map(floor_hour))
            } else {
                (from, split)
            };
            let to = from + len;
            let (whole, raw) = plan(from, to, split);
            let mut all: Vec<(i64, i64)> = whole.iter().chain(raw.iter()).copied().collect();
            all.sort_unstable();
            let mut at = from;
            for (a, b) in &all {
                prop_assert_eq!(*a, at);
                prop_assert!(a < b);
                at = *b;
            }
            prop_assert_eq!(at, to.max(from));
            for (a, b) in &whole {
                prop_assert_eq!(a % HOUR_US, 0);
                prop_assert_eq!(b % HOUR_US, 0);
                if let Some(s) = split {
                    // Every hour in [a, b) is on one side: start > s, or end <= s.
                    let mut h = *a;
                    while h < *b {
                        prop_assert!(h > s || h + HOUR_US <= s, "hour {} split {}", h, s);
                        h += HOUR_US;
                    }
                }
            }
        }
    }

    #[test]
    fn aligned_ranges_need_no_raw_reads() {
        let (whole, raw) = plan(0, 24 * HOUR_US, None);
        assert_eq!(whole, vec![(0, 24 * HOUR_US)]);
        assert!(raw.is_empty());
        let (_, raw) = plan(0, 24 * HOUR_US, Some(10 * HOUR_US));
        assert_eq!(raw, vec![(10 * HOUR_US, 11 * HOUR_US)]);
    }
}
