//! The `alerts` table: every alert raised, one Parquet file per alert under
//! `audit/alerts/dt=YYYY-MM-DD/<id>.parquet` in the storage (next to `tables/`),
//! for auditors. Addresses are not stored (the count of recipients is).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Decimal128Array, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use rust_decimal::Decimal;
use tollgate_ingest::storage::Storage;

use crate::store::Claimed;
use crate::Error;

/// Where the table's files are, under the storage root.
pub const DIR: &str = "audit/alerts";

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

/// The table file of an alert.
pub fn path(c: &Claimed) -> String {
    format!(
        "{DIR}/dt={}/{}.parquet",
        c.alert.at.date_naive(),
        c.alert.id
    )
}

/// Writes the alert's row.
pub async fn write(storage: &Storage, c: &Claimed) -> Result<(), Error> {
    let a = &c.alert;
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
    ];
    let err = |e: &dyn std::fmt::Display| Error::State {
        path: path(c),
        message: e.to_string(),
    };
    let batch = RecordBatch::try_new(schema(), columns).map_err(|e| err(&e))?;
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema(), None).map_err(|e| err(&e))?;
    w.write(&batch).map_err(|e| err(&e))?;
    w.close().map_err(|e| err(&e))?;
    storage.write(&path(c), buf).await.map_err(|e| err(&e))
}
