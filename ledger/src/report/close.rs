//! Closed periods. `close` freezes a month's chargeback as a JSON file with
//! the SHA-256 of its bytes next to it (`sha256sum` format); it is created
//! once and never rewritten. Reading a closed month returns the frozen
//! statement (after checking its SHA-256), whatever arrived since. A late
//! event for a closed month (or a re-priced one) shows as an adjustment line
//! in the next open statement: the closed month's team line as recomputed
//! now, minus its team line when it was closed.
//!
//! Layout under the data directory:
//!
//! ```text
//! ledger/closed/2026-10.json          the frozen statement
//! ledger/closed/2026-10.json.sha256   "<sha256>  2026-10.json"
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::chargeback::{chargeback, Adjustment, Chargeback};
use super::Period;
use crate::{Error, LedgerContext};

/// A frozen statement as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Closed {
    /// When it was closed.
    pub closed_at: DateTime<Utc>,
    /// The statement.
    pub statement: Chargeback,
}

/// The closed months of one data directory.
pub struct ClosedBook {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Storage(format!("{}: {e}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ClosedBook {
    /// The closed statements under `data_dir/ledger/closed`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("ledger").join("closed"),
        }
    }

    fn path(&self, month: &str) -> PathBuf {
        self.dir.join(format!("{month}.json"))
    }

    /// The frozen statement of `month` and its SHA-256, if it is closed.
    /// A statement whose bytes no longer match its SHA-256 is an error.
    pub fn get(&self, month: &str) -> Result<Option<(Closed, String)>, Error> {
        let path = self.path(month);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let sum_path = path.with_extension("json.sha256");
        let recorded = std::fs::read_to_string(&sum_path).map_err(io(&sum_path))?;
        let recorded = recorded
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        let actual = hex(&Sha256::digest(&bytes));
        if actual != recorded {
            return Err(Error::Storage(format!(
                "{}: its SHA-256 is {actual} but {} records {recorded}: the closed statement was altered",
                path.display(),
                sum_path.display()
            )));
        }
        let closed: Closed = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Storage(format!("{}: {e}", path.display())))?;
        Ok(Some((closed, actual)))
    }

    /// Every closed month, `YYYY-MM`, in order.
    pub fn months(&self) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(m) = name.strip_suffix(".json") {
                out.push(m.to_string());
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Freezes the chargeback of `period` (with the adjustments it books).
/// Returns the path and the SHA-256. Closing a month twice is refused.
pub async fn close(
    ctx: &LedgerContext,
    book: &ClosedBook,
    period: &Period,
    currency: &str,
) -> Result<(PathBuf, String), Error> {
    if let Some((c, sha)) = book.get(&period.month)? {
        return Err(Error::Arguments(format!(
            "{} was closed at {} (SHA-256 {sha}); a closed month is never rewritten",
            period.month, c.closed_at
        )));
    }
    let open = statement(ctx, book, period, currency).await?;
    let closed = Closed {
        closed_at: Utc::now(),
        statement: open,
    };
    let mut bytes =
        serde_json::to_vec_pretty(&closed).map_err(|e| Error::Storage(e.to_string()))?;
    bytes.push(b'\n');
    std::fs::create_dir_all(&book.dir).map_err(io(&book.dir))?;
    let path = book.path(&period.month);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io(&path))?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .map_err(io(&path))?;
    let sha = hex(&Sha256::digest(&bytes));
    let sum_path = path.with_extension("json.sha256");
    std::fs::write(&sum_path, format!("{sha}  {}.json\n", period.month)).map_err(io(&sum_path))?;
    Ok((path, sha))
}

/// The month after `month` (`YYYY-MM`).
fn next_month(month: &str) -> Option<String> {
    let d = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    Some(
        d.checked_add_months(chrono::Months::new(1))?
            .format("%Y-%m")
            .to_string(),
    )
}

/// The statement of `period`: the frozen one if the month is closed; else
/// its chargeback with the adjustments to the closed months whose next open
/// month it is.
pub async fn statement(
    ctx: &LedgerContext,
    book: &ClosedBook,
    period: &Period,
    currency: &str,
) -> Result<Chargeback, Error> {
    if let Some((c, _)) = book.get(&period.month)? {
        return Ok(c.statement);
    }
    let mut out = chargeback(ctx, period, currency).await?;
    let closed = book.months()?;
    for month in &closed {
        if month >= &period.month {
            continue;
        }
        // Its next open month: the first month after it that is not closed.
        let mut next = next_month(month);
        while let Some(n) = &next {
            if closed.contains(n) {
                next = next_month(n);
            } else {
                break;
            }
        }
        if next.as_deref() != Some(period.month.as_str()) {
            continue;
        }
        let Some((frozen, _)) = book.get(month)? else {
            continue;
        };
        let then = &frozen.statement;
        let again = Period::month(month, &then.period.tz)?;
        let now = chargeback(ctx, &again, currency).await?;
        let mut diff: BTreeMap<(String, String), Decimal> = BTreeMap::new();
        for t in &now.teams {
            *diff.entry((t.tenant.clone(), t.team.clone())).or_default() += t.total;
        }
        for t in &then.teams {
            *diff.entry((t.tenant.clone(), t.team.clone())).or_default() -= t.total;
        }
        for ((tenant, team), amount) in diff {
            if !amount.is_zero() {
                out.total += amount;
                out.adjustments.push(Adjustment {
                    tenant,
                    team,
                    month: month.clone(),
                    amount,
                });
            }
        }
    }
    Ok(out)
}
