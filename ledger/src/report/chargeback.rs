//! Monthly chargeback: per team, the month's cost with breakdowns by user,
//! environment, workload kind (idle GPU time is its own line; tool calls are
//! `tool_call`) and GPU model. Amounts are summed exactly and rounded once
//! per line: each team line is its exact sum rounded to the currency's
//! smallest unit (half away from zero), on its own; the total is the sum of
//! the rounded lines (so it may differ from the exact sum rounded by up to
//! half a unit per line); each breakdown is split from its team's line by
//! largest remainder, so it adds up to the line exactly.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::facets::{facets, Dim};
use super::Period;
use crate::money::{allocate, minor_units, round, show};
use crate::{Error, LedgerContext};

/// One team's line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeamLine {
    /// Tenant.
    pub tenant: String,
    /// Team.
    pub team: String,
    /// The team's cost for the month, rounded.
    pub total: Decimal,
    /// GPU-hours used.
    pub gpu_hours: Decimal,
    /// Costed events (GPU usage and finished tool calls).
    pub events: u64,
    /// The team's usage without a rate in force (priced as zero); absent
    /// (0) in statements frozen before it was recorded per team.
    #[serde(default)]
    pub unpriced_events: u64,
    /// By user.
    pub by_user: Vec<(String, Decimal)>,
    /// By environment.
    pub by_environment: Vec<(String, Decimal)>,
    /// By workload kind (`idle` for idle GPU time, `tool_call` for tool calls).
    pub by_workload_kind: Vec<(String, Decimal)>,
    /// By GPU model (`-` for tool calls).
    pub by_gpu_model: Vec<(String, Decimal)>,
}

impl TeamLine {
    /// The breakdowns with their dimension names (`workload_kind`,
    /// `environment`, `gpu_model`, `user`), each adding up to the line.
    pub fn breakdowns(&self) -> [(&'static str, &Vec<(String, Decimal)>); 4] {
        [
            ("workload_kind", &self.by_workload_kind),
            ("environment", &self.by_environment),
            ("gpu_model", &self.by_gpu_model),
            ("user", &self.by_user),
        ]
    }
}

/// A month's chargeback statement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chargeback {
    /// The month and zone.
    pub period: Period,
    /// ISO 4217 code.
    pub currency: String,
    /// Team lines, by tenant and team.
    pub teams: Vec<TeamLine>,
    /// Corrections to closed months (late events, re-pricing), booked in
    /// this statement: the first open month after the closed one.
    #[serde(default)]
    pub adjustments: Vec<Adjustment>,
    /// The sum of the team lines and the adjustments.
    pub total: Decimal,
    /// Usage without a rate in force (priced as zero); should be 0.
    pub unpriced_events: u64,
}

/// A flat statement row: tenant, team, dimension, key, amount.
pub type Row = (String, String, &'static str, String, Decimal);

/// A correction to a closed month's team line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjustment {
    /// Tenant.
    pub tenant: String,
    /// Team.
    pub team: String,
    /// The closed month corrected.
    pub month: String,
    /// Its team line now minus its team line when closed.
    pub amount: Decimal,
}

#[derive(Default)]
struct Acc {
    exact: Decimal,
    gpu_millis: i64,
    events: u64,
    unpriced: u64,
    dims: [BTreeMap<String, Decimal>; 4],
}

/// Splits `exact` lines so they add up to `total`, sorted by amount.
fn split(lines: &BTreeMap<String, Decimal>, total: Decimal, dp: u32) -> Vec<(String, Decimal)> {
    let keys: Vec<&String> = lines.keys().collect();
    let vals: Vec<Decimal> = lines.values().copied().collect();
    let mut out: Vec<(String, Decimal)> = keys
        .into_iter()
        .cloned()
        .zip(allocate(&vals, total, dp))
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// The chargeback of `period`.
pub async fn chargeback(
    ctx: &LedgerContext,
    period: &Period,
    currency: &str,
) -> Result<Chargeback, Error> {
    const DIMS: [Dim; 4] = [
        Dim::User,
        Dim::Environment,
        Dim::WorkloadKind,
        Dim::GpuModel,
    ];
    let f = facets(ctx, period.start, period.end, None, &DIMS).await?;
    let mut teams: BTreeMap<(String, String), Acc> = BTreeMap::new();
    let mut unpriced = 0u64;
    for (tenant, team, _, sums) in f.teams() {
        let acc = teams.entry((tenant.clone(), team.clone())).or_default();
        acc.exact += sums.cost;
        acc.gpu_millis += sums.gpu_millis;
        acc.events += sums.events as u64;
        acc.unpriced += sums.unpriced as u64;
        unpriced += sums.unpriced as u64;
    }
    for (d, dim) in DIMS.iter().enumerate() {
        for (tenant, team, key, _, sums) in f.of(*dim) {
            let acc = teams.entry((tenant.clone(), team.clone())).or_default();
            let key = match (key, dim) {
                (Some(k), _) => k.clone(),
                (None, Dim::GpuModel) => "-".to_string(),
                (None, _) => String::new(),
            };
            *acc.dims[d].entry(key).or_default() += sums.cost;
        }
    }
    let dp = minor_units(currency);
    // Each team line is rounded on its own (as an invoice is), so a line
    // does not depend on which other lines a reader may see: a team lead's
    // statement shows the same line as finance's. The total is their sum.
    let team_totals: Vec<Decimal> = teams.values().map(|a| round(a.exact, dp)).collect();
    let total = team_totals.iter().copied().sum();
    let lines = teams
        .into_iter()
        .zip(team_totals)
        .map(|(((tenant, team), acc), t)| TeamLine {
            tenant,
            team,
            total: t,
            gpu_hours: (Decimal::from(acc.gpu_millis) / Decimal::from(3_600_000)).round_dp(3),
            events: acc.events,
            unpriced_events: acc.unpriced,
            by_user: split(&acc.dims[0], t, dp),
            by_environment: split(&acc.dims[1], t, dp),
            by_workload_kind: split(&acc.dims[2], t, dp),
            by_gpu_model: split(&acc.dims[3], t, dp),
        })
        .collect();
    Ok(Chargeback {
        period: period.clone(),
        currency: currency.to_string(),
        teams: lines,
        adjustments: Vec::new(),
        total,
        unpriced_events: unpriced,
    })
}

impl Chargeback {
    /// Keeps the team lines and adjustments `visible(tenant, team)` allows
    /// and makes the total and the unpriced count their sums: what a reader
    /// scoped to some teams may see of a statement (a frozen one included),
    /// with no figure that counts another team's rows.
    pub fn restrict(&mut self, visible: impl Fn(&str, &str) -> bool) {
        self.teams.retain(|t| visible(&t.tenant, &t.team));
        self.adjustments.retain(|a| visible(&a.tenant, &a.team));
        self.total = self.teams.iter().map(|t| t.total).sum::<Decimal>()
            + self.adjustments.iter().map(|a| a.amount).sum::<Decimal>();
        self.unpriced_events = self.teams.iter().map(|t| t.unpriced_events).sum();
    }

    /// A text table: one line per team, the total, and with `detail` each
    /// team's breakdowns.
    pub fn table(&self, detail: bool) -> String {
        let dp = minor_units(&self.currency);
        let mut s = format!(
            "Chargeback {} ({}; {} to {} UTC), {}\n",
            self.period.month,
            self.period.tz,
            self.period.start.format("%Y-%m-%d %H:%M"),
            self.period.end.format("%Y-%m-%d %H:%M"),
            self.currency
        );
        s.push_str(&format!(
            "{:<12} {:<20} {:>16} {:>12} {:>10}\n",
            "tenant", "team", "amount", "GPU-hours", "events"
        ));
        for t in &self.teams {
            s.push_str(&format!(
                "{:<12} {:<20} {:>16} {:>12} {:>10}\n",
                t.tenant,
                t.team,
                show(t.total, dp),
                show(t.gpu_hours, 3),
                t.events
            ));
            if detail {
                for (what, lines) in t.breakdowns() {
                    for (k, v) in lines {
                        s.push_str(&format!(
                            "{:<12}   {what}: {:<28} {:>12}\n",
                            "",
                            k,
                            show(*v, dp)
                        ));
                    }
                }
            }
        }
        for a in &self.adjustments {
            s.push_str(&format!(
                "{:<12} {:<20} {:>16}   adjustment to closed {}\n",
                a.tenant,
                a.team,
                show(a.amount, dp),
                a.month
            ));
        }
        s.push_str(&format!(
            "{:<12} {:<20} {:>16}\n",
            "",
            "total",
            show(self.total, dp)
        ));
        if self.unpriced_events > 0 {
            s.push_str(&format!(
                "warning: {} events had no rate in force and are priced at zero; add the rates to [pricing]\n",
                self.unpriced_events
            ));
        }
        s
    }

    /// The statement as flat rows `(tenant, team, dimension, key, amount)`:
    /// per team a `total` row and its breakdown rows, then the adjustment
    /// rows, then the month's `total` (tenant and team empty).
    pub fn rows(&self) -> Vec<Row> {
        let mut out = Vec::new();
        for t in &self.teams {
            out.push((
                t.tenant.clone(),
                t.team.clone(),
                "total",
                String::new(),
                t.total,
            ));
            for (dim, lines) in t.breakdowns() {
                for (k, v) in lines {
                    out.push((t.tenant.clone(), t.team.clone(), dim, k.clone(), *v));
                }
            }
        }
        for a in &self.adjustments {
            out.push((
                a.tenant.clone(),
                a.team.clone(),
                "adjustment",
                a.month.clone(),
                a.amount,
            ));
        }
        out.push((
            String::new(),
            String::new(),
            "total",
            String::new(),
            self.total,
        ));
        out
    }

    /// CSV of [`rows`](Self::rows), with the month, zone and currency on
    /// every row.
    pub fn csv(&self) -> String {
        let mut s = String::from("month,time_zone,currency,tenant,team,dimension,key,amount\n");
        let head = format!("{},{},{}", self.period.month, self.period.tz, self.currency);
        for (tenant, team, dim, key, amount) in self.rows() {
            s.push_str(&format!(
                "{head},{},{},{dim},{},{amount}\n",
                csv(&tenant),
                csv(&team),
                csv(&key)
            ));
        }
        s
    }

    /// A Parquet file (zstd) of [`rows`](Self::rows): `month`, `time_zone`,
    /// `currency`, `tenant`, `team`, `dimension`, `key` and `amount` as
    /// `Decimal128(38, minor units)`.
    pub fn parquet(&self) -> Result<Vec<u8>, Error> {
        let err = |e: &dyn std::fmt::Display| Error::Storage(format!("writing Parquet: {e}"));
        let batch = self.batch()?;
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
            .build();
        let mut w = parquet::arrow::ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))
            .map_err(|e| err(&e))?;
        w.write(&batch).map_err(|e| err(&e))?;
        w.into_inner().map_err(|e| err(&e))
    }

    /// [`rows`](Self::rows) as one Arrow batch, the columns of
    /// [`parquet`](Self::parquet).
    pub fn batch(&self) -> Result<arrow::array::RecordBatch, Error> {
        use arrow::array::{ArrayRef, Decimal128Builder, RecordBatch, StringBuilder};
        use arrow::datatypes::{DataType, Field, Schema};
        use std::sync::Arc;

        let dp = minor_units(&self.currency);
        let rows = self.rows();
        let text = |f: &dyn Fn(&Row) -> String| {
            let mut b = StringBuilder::new();
            for r in &rows {
                b.append_value(f(r));
            }
            Arc::new(b.finish()) as ArrayRef
        };
        let mut amount =
            Decimal128Builder::new().with_data_type(DataType::Decimal128(38, dp as i8));
        for r in &rows {
            let mut v = round(r.4, dp);
            v.rescale(dp);
            amount.append_value(v.mantissa());
        }
        let names = [
            "month",
            "time_zone",
            "currency",
            "tenant",
            "team",
            "dimension",
            "key",
        ];
        let mut fields: Vec<Field> = names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect();
        fields.push(Field::new(
            "amount",
            DataType::Decimal128(38, dp as i8),
            false,
        ));
        let columns: Vec<ArrayRef> = vec![
            text(&|_| self.period.month.clone()),
            text(&|_| self.period.tz.clone()),
            text(&|_| self.currency.clone()),
            text(&|r| r.0.clone()),
            text(&|r| r.1.clone()),
            text(&|r| r.2.to_string()),
            text(&|r| r.3.clone()),
            Arc::new(amount.finish()),
        ];
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| Error::Storage(format!("statement rows: {e}")))
    }
}

fn csv(v: &str) -> String {
    if v.contains([',', '"', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn line(tenant: &str, team: &str, total: i64, unpriced: u64) -> TeamLine {
        TeamLine {
            tenant: tenant.into(),
            team: team.into(),
            total: Decimal::from(total),
            gpu_hours: Decimal::ZERO,
            events: 10,
            unpriced_events: unpriced,
            by_user: Vec::new(),
            by_environment: Vec::new(),
            by_workload_kind: Vec::new(),
            by_gpu_model: Vec::new(),
        }
    }

    /// A restricted statement (a frozen one included) holds no figure that
    /// counts another team's rows: total and unpriced usage are its lines'.
    #[test]
    fn a_restricted_statement_counts_only_its_own_lines() {
        let mut c = Chargeback {
            period: Period::month("2026-10", "UTC").unwrap(),
            currency: "USD".into(),
            teams: vec![
                line("acme", "search", 100, 3),
                line("acme", "vision", 50, 0),
                line("globex", "x", 70, 40),
            ],
            adjustments: Vec::new(),
            total: Decimal::from(220),
            unpriced_events: 43,
        };
        c.restrict(|t, m| t == "acme" && m == "search");
        assert_eq!(c.teams.len(), 1);
        assert_eq!(c.total, Decimal::from(100));
        assert_eq!(c.unpriced_events, 3);
        // A statement frozen before the per-team count reads as 0, not the
        // frozen all-tenant figure.
        let old = r#"{"period": {"month": "2026-10", "tz": "UTC", "start": "2026-10-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"},
            "currency": "USD", "total": "5", "unpriced_events": 99,
            "teams": [{"tenant": "acme", "team": "search", "total": "5", "gpu_hours": "0", "events": 1,
                       "by_user": [], "by_environment": [], "by_workload_kind": [], "by_gpu_model": []}]}"#;
        let mut c = serde_json::from_str::<Chargeback>(old).unwrap();
        c.restrict(|_, _| true);
        assert_eq!(c.unpriced_events, 0);
    }
}
