//! The reports finance, team leads and the alerting stage read: chargeback
//! for a month, quota status, and the 2x anomaly rule. Each reads
//! [`facets`] of a time range (hourly rollups for whole hours, the raw
//! `costed_usage` rows for the rest, pruning `dt` partitions) and does the
//! money arithmetic in [`rust_decimal`], rounding only at the end.

pub mod anomaly;
pub mod chargeback;
pub mod close;
pub mod facets;
pub mod quota;

use std::str::FromStr;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Decimal128Type, Int64Type, UInt64Type};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use crate::money::from_i128;
use crate::Error;

pub use anomaly::{anomalies, Anomaly, AnomalyConfig, Driver};
pub use chargeback::{chargeback, Adjustment, Chargeback, TeamLine};
pub use close::{close, import_legacy, statement, statement_path, Closed, ClosedBook};
pub use quota::{quota, QuotaLine, QuotaStatus};

/// A time zone by IANA name, such as `Europe/Berlin` or `UTC`.
pub fn zone(name: &str) -> Result<Tz, Error> {
    Tz::from_str(name).map_err(|_| {
        Error::Arguments(format!(
            "--tz {name}: not an IANA time zone name (such as UTC, Europe/Berlin, America/New_York)"
        ))
    })
}

/// The start of a local day in `tz` as UTC (the first valid local time of
/// that day when midnight falls in a DST gap).
fn local_midnight(tz: &Tz, day: NaiveDate) -> DateTime<Utc> {
    let mut t = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    for _ in 0..24 {
        if let Some(x) = tz.from_local_datetime(&t).earliest() {
            return x.with_timezone(&Utc);
        }
        t += Duration::hours(1);
    }
    day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// A month in a time zone: `[start, end)` in UTC.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Period {
    /// `YYYY-MM`.
    pub month: String,
    /// The zone's name.
    pub tz: String,
    /// First instant, UTC.
    pub start: DateTime<Utc>,
    /// First instant after, UTC.
    pub end: DateTime<Utc>,
}

impl Period {
    /// The month `YYYY-MM` in `tz`.
    pub fn month(month: &str, tz: &str) -> Result<Self, Error> {
        let first =
            NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").map_err(|_| {
                Error::Arguments(format!(
                    "--month {month}: expected YYYY-MM, such as 2026-10"
                ))
            })?;
        let zone = zone(tz)?;
        let next = first
            .checked_add_months(chrono::Months::new(1))
            .ok_or_else(|| Error::Arguments(format!("--month {month}: out of range")))?;
        Ok(Self {
            month: first.format("%Y-%m").to_string(),
            tz: zone.name().to_string(),
            start: local_midnight(&zone, first),
            end: local_midnight(&zone, next),
        })
    }

    /// The month that holds `at` in `tz`.
    pub fn month_of(at: DateTime<Utc>, tz: &str) -> Result<Self, Error> {
        let zone = zone(tz)?;
        let local = at.with_timezone(&zone);
        Self::month(&format!("{:04}-{:02}", local.year(), local.month()), tz)
    }
}

/// Reads column `i` of a result row as text ("" for NULL).
pub(crate) fn text(b: &RecordBatch, i: usize, row: usize) -> String {
    let c = b.column(i);
    if c.is_null(row) {
        return String::new();
    }
    match c.data_type() {
        DataType::Utf8 => c.as_string::<i32>().value(row).to_string(),
        DataType::Utf8View => c.as_string_view().value(row).to_string(),
        DataType::LargeUtf8 => c.as_string::<i64>().value(row).to_string(),
        _ => String::new(),
    }
}

/// Reads a decimal column (NULL as zero).
pub(crate) fn money(b: &RecordBatch, i: usize, row: usize) -> Decimal {
    let c = b.column(i);
    match c.data_type() {
        DataType::Decimal128(_, s) if !c.is_null(row) => from_i128(
            c.as_primitive::<Decimal128Type>().value(row),
            (*s).max(0) as u32,
        ),
        _ => Decimal::ZERO,
    }
}

/// Reads an integer column (NULL as zero).
pub(crate) fn int(b: &RecordBatch, i: usize, row: usize) -> i64 {
    let c = b.column(i);
    if c.is_null(row) {
        return 0;
    }
    match c.data_type() {
        DataType::Int64 => c.as_primitive::<Int64Type>().value(row),
        DataType::UInt64 => c.as_primitive::<UInt64Type>().value(row) as i64,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_follow_the_zone_and_its_dst() {
        let p = Period::month("2026-10", "Europe/Berlin").unwrap();
        // CEST (UTC+2) at the start, CET (UTC+1) after 25 October.
        assert_eq!(p.start.to_rfc3339(), "2026-09-30T22:00:00+00:00");
        assert_eq!(p.end.to_rfc3339(), "2026-10-31T23:00:00+00:00");
        let utc = Period::month("2026-02", "UTC").unwrap();
        assert_eq!((utc.end - utc.start).num_days(), 28);
        assert!(Period::month("2026-13", "UTC").is_err());
        assert!(Period::month("2026-10", "Mars/Olympus").is_err());
    }
}
