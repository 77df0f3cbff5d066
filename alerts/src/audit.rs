//! The `alerts` table: every alert raised, one row per alert, for auditors.
//! Addresses are not stored (the count of recipients is). An audit table:
//! files under `audit/alerts/dt=YYYY-MM-DD/`, committed by the chain
//! `audit/_commits/alerts/` (see `tollgate_storage::audit_log`).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Decimal128Array, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rust_decimal::Decimal;
use tollgate_storage::audit_log::AuditLog;
use tollgate_storage::{instance_name, Storage};

use crate::store::Claimed;
use crate::Error;

/// Where the table's files are, under the storage root.
pub const DIR: &str = "audit/alerts";

/// The table's name (and its chain's, under `audit/_commits/`).
pub const TABLE: &str = "alerts";

/// The table in `storage`.
pub fn log(storage: Storage) -> AuditLog {
    AuditLog::new(storage, TABLE, DIR, schema(), &instance_name("alerts"))
}

/// Scale of the money columns.
const SCALE: i8 = 6;

/// The `alerts` table's schema.
pub fn schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let money = DataType::Decimal128(38, SCALE);
    Arc::new(Schema::new(vec![
        Field::new("alert_id", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("tenant", DataType::Utf8, false),
        Field::new("team", DataType::Utf8, false),
        Field::new("month", DataType::Utf8, false),
        Field::new("at", ts.clone(), false),
        Field::new("currency", DataType::Utf8, false),
        Field::new("spent", money.clone(), false),
        Field::new("quota", money.clone(), false),
        Field::new("burn_pct", money.clone(), false),
        Field::new("forecast", money.clone(), false),
        Field::new("day_cost", money.clone(), true),
        Field::new("baseline_daily", money.clone(), true),
        Field::new("ratio", money, true),
        Field::new("drivers_json", DataType::Utf8, false),
        Field::new("recipients", DataType::Int32, false),
        Field::new("claimed_at", ts, false),
        Field::new("dt", DataType::Utf8, false),
    ]))
}

fn scaled(d: Decimal) -> i128 {
    let mut d = d.round_dp(SCALE as u32);
    d.rescale(SCALE as u32);
    d.mantissa()
}

fn money(v: Option<Decimal>) -> ArrayRef {
    Arc::new(
        Decimal128Array::from(vec![v.map(scaled)])
            .with_precision_and_scale(38, SCALE)
            .unwrap_or_else(|_| Decimal128Array::from(vec![None::<i128>])),
    )
}

/// Writes the alert's row (in the partition of the alert's time) and
/// returns once it is committed.
pub async fn write(log: &AuditLog, c: &Claimed) -> Result<(), Error> {
    let a = &c.alert;
    let dt = a.at.date_naive();
    let s = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v.to_string()])) };
    let ts = |t: chrono::DateTime<chrono::Utc>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(vec![t.timestamp_micros()]).with_timezone("UTC"))
    };
    let columns: Vec<ArrayRef> = vec![
        s(&a.id),
        s(a.kind.as_str()),
        s(&a.tenant),
        s(&a.team),
        s(&a.month),
        ts(a.at),
        s(&a.currency),
        money(Some(a.spent)),
        money(Some(a.quota)),
        money(Some(a.burn_pct)),
        money(Some(a.forecast)),
        money(a.day_cost),
        money(a.baseline_daily),
        money(a.ratio),
        s(&serde_json::to_string(&a.drivers).unwrap_or_default()),
        Arc::new(Int32Array::from(vec![c.recipients.len() as i32])),
        ts(c.claimed_at),
        s(&dt.to_string()),
    ];
    let err = |e: &dyn std::fmt::Display| Error::State {
        path: format!("{DIR}/dt={dt} (alert {})", a.id),
        message: e.to_string(),
    };
    let batch = RecordBatch::try_new(schema(), columns).map_err(|e| err(&e))?;
    log.append(dt, batch).await.map_err(|e| err(&e))
}
