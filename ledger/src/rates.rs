//! The price book as Arrow tables for DataFusion: one row per rate with the
//! interval `[effective_from, effective_to)` it is in force, and the price
//! per smallest unit (GPU-millisecond, token, call) as `Decimal128(38, 18)`,
//! computed exactly from the configured decimal strings.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Decimal128Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::{Error, PriceBook};

/// Scale of every rate column.
pub const RATE_SCALE: i8 = 18;
/// The Arrow type of every rate column.
pub const RATE_TYPE: DataType = DataType::Decimal128(38, RATE_SCALE);

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// `rate` as a `Decimal128(38, 18)` mantissa.
pub fn to_i128(rate: Decimal) -> Result<i128, Error> {
    let mut r = rate;
    r.rescale(RATE_SCALE as u32);
    if r.scale() != RATE_SCALE as u32 {
        return Err(Error::Pricing(format!(
            "rate {rate} cannot be represented with {RATE_SCALE} decimal places"
        )));
    }
    Ok(r.mantissa())
}

/// An entry with the start and (if any) end of its interval.
type Interval<'a, T> = (&'a T, DateTime<Utc>, Option<DateTime<Utc>>);

/// Sorts entries by key and start, and gives each the start of the next
/// entry with the same key as its end (`None`: still in force).
fn intervals<T, K: Ord + Clone>(
    items: &[T],
    key: impl Fn(&T) -> K,
    from: impl Fn(&T) -> DateTime<Utc>,
) -> Vec<Interval<'_, T>> {
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort_by(|a, b| key(a).cmp(&key(b)).then(from(a).cmp(&from(b))));
    let mut out = Vec::with_capacity(sorted.len());
    for (i, item) in sorted.iter().enumerate() {
        let to = sorted
            .get(i + 1)
            .filter(|next| key(next) == key(item))
            .map(|next| from(next));
        out.push((*item, from(item), to));
    }
    out
}

/// Far enough in the future to stand for "still in force".
fn open_end() -> i64 {
    // 9999-12-31
    253_402_214_400_000_000
}

fn schema(keys: &[&str], rates: &[&str]) -> SchemaRef {
    let mut fields: Vec<Field> = keys
        .iter()
        .map(|k| Field::new(*k, DataType::Utf8, false))
        .collect();
    fields.push(Field::new("effective_from", ts(), false));
    fields.push(Field::new("effective_to", ts(), false));
    fields.extend(rates.iter().map(|r| Field::new(*r, RATE_TYPE, false)));
    Arc::new(Schema::new(fields))
}

fn decimals() -> Decimal128Builder {
    Decimal128Builder::new().with_data_type(RATE_TYPE)
}

fn times() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

/// `gpu_rates(gpu_model, pricing_tier, effective_from, effective_to, per_gpu_milli)`.
pub fn gpu_rates(book: &PriceBook) -> Result<RecordBatch, Error> {
    let cfg = book.config();
    let rows = intervals(
        &cfg.gpu,
        |g| (g.gpu_model.clone(), g.tier.as_str()),
        |g| g.effective_from,
    );
    let (mut model, mut tier) = (StringBuilder::new(), StringBuilder::new());
    let (mut from, mut to, mut rate) = (times(), times(), decimals());
    for (g, f, t) in rows {
        model.append_value(&g.gpu_model);
        tier.append_value(g.tier.as_str());
        from.append_value(f.timestamp_micros());
        to.append_value(t.map_or(open_end(), |t| t.timestamp_micros()));
        rate.append_value(to_i128(g.per_gpu_second / Decimal::ONE_THOUSAND)?);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(model.finish()),
        Arc::new(tier.finish()),
        Arc::new(from.finish()),
        Arc::new(to.finish()),
        Arc::new(rate.finish()),
    ];
    RecordBatch::try_new(
        schema(&["gpu_model", "pricing_tier"], &["per_gpu_milli"]),
        cols,
    )
    .map_err(|e| Error::Pricing(e.to_string()))
}

/// `token_rates(model, effective_from, effective_to, per_input_token, per_output_token)`.
pub fn token_rates(book: &PriceBook) -> Result<RecordBatch, Error> {
    let cfg = book.config();
    let rows = intervals(&cfg.tokens, |t| t.model.clone(), |t| t.effective_from);
    let million = Decimal::from(1_000_000u32);
    let mut model = StringBuilder::new();
    let (mut from, mut to, mut input, mut output) = (times(), times(), decimals(), decimals());
    for (r, f, t) in rows {
        model.append_value(&r.model);
        from.append_value(f.timestamp_micros());
        to.append_value(t.map_or(open_end(), |t| t.timestamp_micros()));
        input.append_value(to_i128(r.input_per_million / million)?);
        output.append_value(to_i128(r.output_per_million / million)?);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(model.finish()),
        Arc::new(from.finish()),
        Arc::new(to.finish()),
        Arc::new(input.finish()),
        Arc::new(output.finish()),
    ];
    RecordBatch::try_new(
        schema(&["model"], &["per_input_token", "per_output_token"]),
        cols,
    )
    .map_err(|e| Error::Pricing(e.to_string()))
}

/// `tool_fees(tool, effective_from, effective_to, per_call)`.
pub fn tool_fees(book: &PriceBook) -> Result<RecordBatch, Error> {
    let cfg = book.config();
    let rows = intervals(&cfg.tools, |t| t.tool.clone(), |t| t.effective_from);
    let mut tool = StringBuilder::new();
    let (mut from, mut to, mut fee) = (times(), times(), decimals());
    for (r, f, t) in rows {
        tool.append_value(&r.tool);
        from.append_value(f.timestamp_micros());
        to.append_value(t.map_or(open_end(), |t| t.timestamp_micros()));
        fee.append_value(to_i128(r.per_call)?);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(tool.finish()),
        Arc::new(from.finish()),
        Arc::new(to.finish()),
        Arc::new(fee.finish()),
    ];
    RecordBatch::try_new(schema(&["tool"], &["per_call"]), cols)
        .map_err(|e| Error::Pricing(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::{GpuRate, PricingConfig};
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Decimal128Type;
    use std::str::FromStr;
    use tollgate_event::PricingTier;

    #[test]
    fn a_rate_ends_where_the_next_begins() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let rate = |r: &str, from: &str| GpuRate {
            gpu_model: "H100".into(),
            tier: PricingTier::Spot,
            per_gpu_second: Decimal::from_str(r).unwrap(),
            effective_from: at(from),
        };
        let book = PriceBook::new(PricingConfig {
            gpu: vec![
                rate("0.002", "2026-10-15T00:00:00Z"),
                rate("0.001", "2026-01-01T00:00:00Z"),
            ],
            ..PricingConfig::default()
        })
        .unwrap();
        let b = gpu_rates(&book).unwrap();
        assert_eq!(b.num_rows(), 2);
        let to = b
            .column(3)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(to.value(0), at("2026-10-15T00:00:00Z").timestamp_micros());
        assert_eq!(to.value(1), open_end());
        let per_milli = b.column(4).as_primitive::<Decimal128Type>();
        // 0.001 per second = 0.000001 per millisecond, at scale 18.
        assert_eq!(per_milli.value(0), 1_000_000_000_000);
        assert!(!per_milli.is_null(1));
    }
}
