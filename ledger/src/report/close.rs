//! Closed periods. `report close` freezes a month's chargeback in the
//! storage, once. The closed statements form a chain in the order they were
//! closed: `ledger/statements/NNNNNN.json`, each created with
//! create-if-absent on its sequence number and holding the SHA-256 of the
//! previous one's bytes, so that two instances closing at once never both
//! win, a month is closed at most once, and an edited, deleted, reordered
//! or inserted statement breaks the chain that `tollgate verify` walks.
//!
//! Reading a closed month returns the frozen statement, whatever arrived
//! since. A late event for a closed month (or a re-priced one) shows as an
//! adjustment line in the next open statement: the closed month's team line
//! as recomputed now, minus its team line when it was closed.
//!
//! ```text
//! ledger/statements/000001.json   {"sequence":1,"previous":null,"closed_at":..,"statement":{..}}
//! ledger/statements/000002.json   {"sequence":2,"previous":"<sha256 of 000001.json>",..}
//! ```
//!
//! Statements closed by versions before the chain sit in `ledger/closed/`
//! (`YYYY-MM.json` beside a `sha256sum` file). They are read (after checking
//! that sum) and moved into the chain by the next `report close` or
//! `tollgate ledger rebuild`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tollgate_storage::{sha256_hex, DerivedChain, Problem, Storage, VerifyReport};

use super::chargeback::{chargeback, Adjustment, Chargeback};
use super::Period;
use crate::{Error, LedgerContext};

/// Where the chain of closed statements is, under the storage root.
pub const DIR: &str = "ledger/statements/";

/// Where versions before the chain kept closed statements.
const LEGACY: &str = "ledger/closed/";

/// What to do about a broken chain: statements are frozen, so the only
/// remedy is the backup.
const RESTORE: &str = "closed statements are never recomputed: restore ledger/statements/ from a backup (tollgate verify lists every problem)";

/// A frozen statement as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Closed {
    /// Its place in the chain, from 1 (0 for a statement closed before the
    /// chain, not yet moved into it).
    #[serde(default)]
    pub sequence: u64,
    /// SHA-256 (hex) of the previous statement's bytes; `None` for the first.
    #[serde(default)]
    pub previous: Option<String>,
    /// When it was closed.
    pub closed_at: DateTime<Utc>,
    /// The statement.
    pub statement: Chargeback,
    /// SHA-256 (hex) of the fields above as compact JSON: an edit of the
    /// newest statement, which no later one links to, still shows.
    #[serde(default)]
    pub content_sha256: String,
}

impl Closed {
    /// SHA-256 of the sequence, link, time and statement as compact JSON.
    pub fn content_hash(&self) -> Result<String, Error> {
        let bytes = serde_json::to_vec(&(
            self.sequence,
            &self.previous,
            &self.closed_at,
            &self.statement,
        ))
        .map_err(storage_err)?;
        Ok(sha256_hex(&bytes))
    }
}

/// One closed statement with where it is and its SHA-256.
#[derive(Debug, Clone)]
struct Link {
    path: String,
    sha256: String,
    closed: Closed,
}

/// The closed months of one storage, read once (a report reads it at its
/// start; `close` reads it again before each attempt).
#[derive(Debug, Clone, Default)]
pub struct ClosedBook {
    chain: Vec<Link>,
    legacy: Vec<Link>,
}

/// The path of the statement with `sequence`.
pub fn statement_path(sequence: u64) -> String {
    format!("{DIR}{sequence:06}.json")
}

fn storage_err(e: impl std::fmt::Display) -> Error {
    Error::Storage(e.to_string())
}

fn serialise(closed: &Closed) -> Result<Vec<u8>, Error> {
    let mut bytes = serde_json::to_vec_pretty(closed).map_err(storage_err)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The problems of the chain under [`DIR`] (as `verify` reports them) and
/// the statements that are sound, in order.
async fn walk(storage: &Storage) -> Result<(Vec<Link>, Vec<Problem>, u64), Error> {
    let mut links: Vec<Link> = Vec::new();
    let mut problems = Vec::new();
    let mut bytes_read = 0u64;
    let mut months: BTreeMap<String, String> = BTreeMap::new();
    let mut prev: Option<(u64, String, String)> = None;
    for path in storage.list_files(DIR).await.map_err(storage_err)? {
        let named = path
            .strip_prefix(DIR)
            .and_then(|n| n.strip_suffix(".json"))
            .filter(|n| n.len() == 6 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok());
        let Some(named) = named else {
            problems.push(Problem::new(
                "stray_statement_object",
                &path,
                "is not a closed statement (NNNNNN.json)",
            ));
            continue;
        };
        let bytes = storage.read(&path).await.map_err(storage_err)?;
        bytes_read += bytes.len() as u64;
        let sha = sha256_hex(&bytes);
        let closed: Closed = match serde_json::from_slice(&bytes) {
            Ok(c) => c,
            Err(e) => {
                problems.push(Problem::new(
                    "bad_statement",
                    &path,
                    format!("is not a closed statement: {e}"),
                ));
                prev = Some((named, sha, path));
                continue;
            }
        };
        let mut sound = true;
        let content = closed.content_hash()?;
        if content != closed.content_sha256 {
            sound = false;
            problems.push(Problem::new(
                "statement_hash_mismatch",
                &path,
                format!(
                    "its content's SHA-256 is {content} but it records {:?}: it was edited",
                    closed.content_sha256
                ),
            ));
        } else if serialise(&closed)? != bytes {
            sound = false;
            problems.push(Problem::new(
                "statement_hash_mismatch",
                &path,
                "its bytes differ from the statement as it was written (same content, other bytes): it was edited",
            ));
        }
        if closed.sequence != named {
            sound = false;
            problems.push(Problem::new(
                "misplaced_statement",
                &path,
                format!("says it is statement {}", closed.sequence),
            ));
        }
        let expected = prev.as_ref().map_or(1, |(s, _, _)| s + 1);
        if named != expected {
            sound = false;
            problems.push(Problem::new(
                "statement_gap",
                &path,
                format!(
                    "follows statement {} but the chain expects statement {expected} here (one is missing)",
                    expected - 1
                ),
            ));
        }
        let want = prev.as_ref().map(|(_, s, _)| s.clone());
        if closed.previous != want {
            sound = false;
            problems.push(match &prev {
                Some((_, actual, before)) => Problem::broken_link(
                    "broken_statement_chain",
                    "statement",
                    before,
                    actual,
                    &path,
                    closed.previous.as_deref(),
                ),
                None => Problem::new(
                    "broken_statement_chain",
                    &path,
                    "is the first statement but records a previous one",
                ),
            });
        }
        let month = closed.statement.period.month.clone();
        if let Some(first) = months.get(&month) {
            sound = false;
            problems.push(Problem::new(
                "month_closed_twice",
                &path,
                format!("closes {month}, which {first} closed already"),
            ));
        } else {
            months.insert(month, path.clone());
        }
        prev = Some((named, sha.clone(), path.clone()));
        if sound {
            links.push(Link {
                path,
                sha256: sha,
                closed,
            });
        }
    }
    Ok((links, problems, bytes_read))
}

/// Statements in the pre-chain layout, each checked against its sum file.
async fn legacy(storage: &Storage) -> Result<(Vec<Link>, Vec<Problem>), Error> {
    let mut links = Vec::new();
    let mut problems = Vec::new();
    for path in storage.list_files(LEGACY).await.map_err(storage_err)? {
        if !path.ends_with(".json") {
            continue;
        }
        let bytes = storage.read(&path).await.map_err(storage_err)?;
        let sha = sha256_hex(&bytes);
        let sum_path = format!("{path}.sha256");
        let recorded = match storage.read(&sum_path).await {
            Ok(b) => String::from_utf8_lossy(&b)
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
            Err(e) if e.is_not_found() => String::new(),
            Err(e) => return Err(storage_err(e)),
        };
        if recorded != sha {
            problems.push(Problem::new(
                "statement_hash_mismatch",
                &path,
                format!("has SHA-256 {sha} but {sum_path} records {recorded:?}: it was altered"),
            ));
            continue;
        }
        match serde_json::from_slice::<Closed>(&bytes) {
            Ok(mut closed) => {
                closed.sequence = 0;
                closed.previous = None;
                links.push(Link {
                    path,
                    sha256: sha,
                    closed,
                });
            }
            Err(e) => problems.push(Problem::new(
                "bad_statement",
                &path,
                format!("is not a closed statement: {e}"),
            )),
        }
    }
    Ok((links, problems))
}

impl ClosedBook {
    /// Reads every closed statement of `storage`. A chain that `verify`
    /// would fault is an [`Error::Integrity`] naming the first problem: no
    /// statement is served from a chain that was tampered with.
    pub async fn load(storage: &Storage) -> Result<Self, Error> {
        let (chain, problems, _) = walk(storage).await?;
        let (mut legacy, legacy_problems) = legacy(storage).await?;
        if let Some(p) = problems.iter().chain(&legacy_problems).next() {
            return Err(Error::Integrity(format!(
                "closed statement {} {}; {RESTORE}",
                p.path, p.message
            )));
        }
        legacy.retain(|l| {
            !chain
                .iter()
                .any(|c| c.closed.statement.period.month == l.closed.statement.period.month)
        });
        Ok(Self { chain, legacy })
    }

    fn link(&self, month: &str) -> Option<&Link> {
        self.chain
            .iter()
            .chain(&self.legacy)
            .find(|l| l.closed.statement.period.month == month)
    }

    /// The frozen statement of `month` and its SHA-256, if it is closed.
    pub fn get(&self, month: &str) -> Option<(&Closed, &str)> {
        self.link(month).map(|l| (&l.closed, l.sha256.as_str()))
    }

    /// Where the statement of `month` is stored, if it is closed.
    pub fn path(&self, month: &str) -> Option<&str> {
        self.link(month).map(|l| l.path.as_str())
    }

    /// Every closed month, `YYYY-MM`, in order.
    pub fn months(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .chain
            .iter()
            .chain(&self.legacy)
            .map(|l| l.closed.statement.period.month.clone())
            .collect();
        out.sort();
        out
    }

    /// Appends `closed_at`/`statement` after the chain's head, unless
    /// another writer took that place first (`None`: read the book again).
    async fn append(
        &self,
        storage: &Storage,
        closed_at: DateTime<Utc>,
        statement: Chargeback,
    ) -> Result<Option<(String, String)>, Error> {
        let mut closed = Closed {
            sequence: self.chain.last().map_or(1, |l| l.closed.sequence + 1),
            previous: self.chain.last().map(|l| l.sha256.clone()),
            closed_at,
            statement,
            content_sha256: String::new(),
        };
        closed.content_sha256 = closed.content_hash()?;
        let bytes = serialise(&closed)?;
        let sha = sha256_hex(&bytes);
        let path = statement_path(closed.sequence);
        if storage.create(&path, bytes).await.map_err(storage_err)? {
            Ok(Some((path, sha)))
        } else {
            Ok(None)
        }
    }
}

/// Moves statements closed before the chain into it (in month order), then
/// deletes the old files. Returns how many moved.
pub async fn import_legacy(storage: &Storage) -> Result<usize, Error> {
    let mut moved = 0;
    loop {
        let book = ClosedBook::load(storage).await?;
        let Some(first) = book.legacy.iter().min_by(|a, b| {
            a.closed
                .statement
                .period
                .month
                .cmp(&b.closed.statement.period.month)
        }) else {
            return Ok(moved);
        };
        let appended = book
            .append(
                storage,
                first.closed.closed_at,
                first.closed.statement.clone(),
            )
            .await?;
        if appended.is_some() {
            moved += 1;
            storage.delete(&first.path).await.map_err(storage_err)?;
            storage
                .delete(&format!("{}.sha256", first.path))
                .await
                .map_err(storage_err)?;
        }
    }
}

/// Freezes the chargeback of `period` (with the adjustments it books) as
/// the next statement of the chain. Returns its path and SHA-256. Closing a
/// month twice is refused, also when two instances try at once.
pub async fn close(
    ctx: &LedgerContext,
    period: &Period,
    currency: &str,
) -> Result<(String, String), Error> {
    let storage = ctx.storage();
    import_legacy(storage).await?;
    loop {
        let book = ClosedBook::load(storage).await?;
        if let Some((c, sha)) = book.get(&period.month) {
            return Err(Error::Arguments(format!(
                "{} was closed at {} (SHA-256 {sha}); a closed month is never rewritten",
                period.month, c.closed_at
            )));
        }
        let open = statement(ctx, &book, period, currency).await?;
        if let Some(done) = book.append(storage, Utc::now(), open).await? {
            return Ok(done);
        }
    }
}

/// Walks the chain of closed statements for `tollgate verify`, adding its
/// problems and a summary to `report`.
pub async fn verify(storage: &Storage, report: &mut VerifyReport) -> Result<(), Error> {
    let (links, problems, bytes) = walk(storage).await?;
    let (_, legacy_problems) = legacy(storage).await?;
    let files = storage.list_files(DIR).await.map_err(storage_err)?;
    let head = files.last().cloned();
    let head_sha256 = match &head {
        Some(p) => Some(sha256_hex(&storage.read(p).await.map_err(storage_err)?)),
        None => None,
    };
    report.problems.extend(problems);
    report.problems.extend(legacy_problems);
    report.files += links.len() as u64;
    report.bytes += bytes;
    report.derived.push(DerivedChain {
        name: "closed statements".into(),
        links: files.len() as u64,
        head,
        head_sha256,
        files: links.len() as u64,
        bytes,
    });
    Ok(())
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
    if let Some((c, _)) = book.get(&period.month) {
        return Ok(c.statement.clone());
    }
    let mut out = chargeback(ctx, period, currency).await?;
    let closed = book.months();
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
        let Some((frozen, _)) = book.get(month) else {
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
