//! `tollgate report chargeback | quota | anomalies`.

use std::io::Write;
use std::process::ExitCode;
use tollgate_queries::auth::Unauthorized;
use tollgate_queries::request::audited;
use tollgate_queries::sql::QueryError;
use tollgate_queries::{Permission, Principal, Reader};

use anyhow::{bail, Result};
use tollgate_ledger::report::{self, Period};
use tollgate_ledger::{LedgerContext, PriceBook};
use tollgate_storage::Storage;
use tollgate_storage::StorageConfig;

use crate::cli::{ReportCommand, ReportCommon, ReportFormat};
use crate::config::{Config, Loaded};
use crate::queries_cmd::as_token;

fn storage(config: &Config, common: &ReportCommon) -> Result<StorageConfig> {
    config.storage_for(common.data_dir.as_deref())
}

/// Opens the ledger over `store`, reading the rollups (and, rolled up in
/// memory, the commit records they do not cover yet; nothing is written)
/// unless `--no-rollups` or `ledger.rollups = false`.
pub(crate) async fn open_ledger(
    config: &Config,
    store: &StorageConfig,
    book: &PriceBook,
    no_rollups: bool,
) -> Result<LedgerContext> {
    let mut ctx = LedgerContext::open(store, book).await?;
    if no_rollups || !config.ledger.rollups {
        return Ok(ctx);
    }
    use tollgate_ledger::rollup::Unusable;
    match ctx.read_snapshot().await? {
        Err(Unusable::OtherPriceBook(v)) => eprintln!(
            "note: the rollups (version {v}) were priced with another price book; reading the raw tables (run `tollgate ledger rebuild` to reprice them)"
        ),
        Err(Unusable::OldFormat(v)) => eprintln!(
            "note: the rollups (version {v}) were written before rollup files were hashed; reading the raw tables (run `tollgate ledger rebuild`)"
        ),
        Err(Unusable::None) => eprintln!(
            "note: no rollups yet (tollgate run builds them, or tollgate ledger refresh); reading the raw tables"
        ),
        Ok(s) if s.tail_records > 0 => eprintln!(
            "rollups: version {}, and {} newer commit records ({} events) from the raw tables (tollgate run rolls them up)",
            s.manifest.version, s.tail_records, s.tail_events
        ),
        Ok(_) => {}
    }
    Ok(ctx)
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

pub fn run(loaded: Loaded, cmd: ReportCommand) -> Result<ExitCode> {
    let config = loaded.config;
    let book = PriceBook::new(config.pricing.clone())?;
    let currency = book.currency().to_string();
    let rt = crate::runtime()?;
    rt.block_on(async {
        match cmd {
            ReportCommand::Chargeback(args) => {
                let tz = args.common.tz.clone().unwrap_or(config.ledger.timezone.clone());
                let period = Period::month(&args.month, &tz)?;
                let store = storage(&config, &args.common)?;
                let closed = report::ClosedBook::load(&Storage::open(&store, "report")?).await?;
                if let Some((c, sha)) = closed.get(&period.month) {
                    eprintln!(
                        "{} is closed (at {}, SHA-256 {sha}): the frozen statement follows",
                        period.month, c.closed_at
                    );
                }
                let c = match &args.common.token {
                    Some(token) => {
                        let (reader, principal) = as_token(&config, &store, token)?;
                        let text = format!("month={}&tz={tz}", args.month);
                        let (reader, month, tz) = (&reader, &args.month, &tz);
                        scoped(reader, principal, "cli report chargeback", &text, |p| async move {
                            let (c, _) = reader.chargeback(&p, month, Some(tz)).await?;
                            Ok((c.teams.len(), c))
                        })
                        .await?
                    }
                    None => {
                        let ctx = open_ledger(&config, &store, &book, args.common.no_rollups).await?;
                        report::statement(&ctx, &closed, &period, &currency).await?
                    }
                };
                let bytes = match args.common.format {
                    ReportFormat::Table => c.table(args.detail).into_bytes(),
                    ReportFormat::Csv => c.csv().into_bytes(),
                    ReportFormat::Json => (serde_json::to_string_pretty(&c)? + "\n").into_bytes(),
                    ReportFormat::Parquet => {
                        if args.output.is_none() {
                            bail!("--format parquet writes a file: give --output FILE");
                        }
                        c.parquet()?
                    }
                };
                match &args.output {
                    Some(path) => {
                        std::fs::write(path, &bytes)
                            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
                        eprintln!("wrote {} ({} bytes)", path.display(), bytes.len());
                    }
                    None => print(&String::from_utf8_lossy(&bytes))?,
                }
            }
            ReportCommand::Close(args) => {
                let tz = args.common.tz.clone().unwrap_or(config.ledger.timezone.clone());
                let period = Period::month(&args.month, &tz)?;
                if period.end > chrono::Utc::now() {
                    bail!("{} has not ended yet (it ends {} UTC); close a month once it is over", period.month, period.end);
                }
                if args.common.token.is_some() {
                    bail!("report close is an operator command; it does not take --token");
                }
                let store = storage(&config, &args.common)?;
                let ctx = open_ledger(&config, &store, &book, args.common.no_rollups).await?;
                let (path, sha) = report::close(&ctx, &period, &currency).await?;
                print(&format!(
                    "closed {} ({}): {path} in {}\nSHA-256 {sha}\n",
                    period.month,
                    period.tz,
                    ctx.storage().description()
                ))?;
            }
            ReportCommand::Quota(args) => {
                let tz = args.common.tz.clone().unwrap_or(config.ledger.timezone.clone());
                let at = args.at.unwrap_or_else(chrono::Utc::now);
                let store = storage(&config, &args.common)?;
                if config.teams.is_empty() {
                    eprintln!("note: no [[teams]] configured, so no quotas to report");
                }
                let (period, lines) = match &args.common.token {
                    Some(token) => {
                        let (reader, principal) = as_token(&config, &store, token)?;
                        let text = format!("at={}&tz={tz}", at.to_rfc3339());
                        let (reader, tz) = (&reader, &tz);
                        scoped(reader, principal, "cli report quota", &text, |p| async move {
                            let (period, lines, _) = reader.quota(&p, at, Some(tz)).await?;
                            Ok((lines.len(), (period, lines)))
                        })
                        .await?
                    }
                    None => {
                        let ctx = open_ledger(&config, &store, &book, args.common.no_rollups).await?;
                        report::quota(&ctx, &config.teams, at, &tz, &currency).await?
                    }
                };
                match args.common.format {
                    ReportFormat::Table => {
                        print(&report::quota::table(&period, at, &lines, &currency))?
                    }
                    ReportFormat::Csv | ReportFormat::Parquet => {
                        bail!("--format csv and parquet are for chargeback; use table or json")
                    }
                    ReportFormat::Json => print(
                        &(serde_json::to_string_pretty(
                            &serde_json::json!({"period": period, "at": at, "currency": currency, "teams": lines}),
                        )? + "\n"),
                    )?,
                }
            }
            ReportCommand::Anomalies(args) => {
                let at = args.at.unwrap_or_else(chrono::Utc::now);
                let store = storage(&config, &args.common)?;
                let found = match &args.common.token {
                    Some(token) => {
                        let (reader, principal) = as_token(&config, &store, token)?;
                        let text = format!("at={}", at.to_rfc3339());
                        let reader = &reader;
                        scoped(reader, principal, "cli report anomalies", &text, |p| async move {
                            let (found, _) = reader.anomalies(&p, at).await?;
                            Ok((found.len(), found))
                        })
                        .await?
                    }
                    None => {
                        let ctx = open_ledger(&config, &store, &book, args.common.no_rollups).await?;
                        report::anomalies(&ctx, &config.ledger.anomaly, at, &currency).await?
                    }
                };
                match args.common.format {
                    ReportFormat::Json => print(&(serde_json::to_string_pretty(&found)? + "\n"))?,
                    ReportFormat::Csv | ReportFormat::Parquet => {
                        bail!("--format csv and parquet are for chargeback; use table or json")
                    }
                    ReportFormat::Table => {
                        let mut s = format!(
                            "Anomalies at {} UTC: cost of the last 24 h over {}x the {}-day daily average\n",
                            at.format("%Y-%m-%d %H:%M"),
                            config.ledger.anomaly.multiplier,
                            config.ledger.anomaly.window_days
                        );
                        if found.is_empty() {
                            s.push_str("  none\n");
                        }
                        for a in &found {
                            s.push_str(&format!(
                                "  {}/{}: {} {currency} in 24 h, {}x its daily average of {}\n",
                                a.tenant, a.team, a.day_cost, a.ratio, a.baseline_daily
                            ));
                            for d in &a.drivers {
                                s.push_str(&format!(
                                    "      {} {}: {} (average {} a day, +{})\n",
                                    d.dimension, d.key, d.day_cost, d.baseline_daily, d.growth
                                ));
                            }
                        }
                        print(&s)?;
                    }
                }
            }
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Runs a report as a token's principal, through the same scoped session,
/// permission check and query audit as the API.
async fn scoped<T, Fut>(
    reader: &Reader,
    principal: Result<Principal, Unauthorized>,
    endpoint: &str,
    text: &str,
    run: impl FnOnce(Principal) -> Fut,
) -> Result<T>
where
    Fut: std::future::Future<Output = Result<(usize, T), QueryError>>,
{
    let (_, result) = audited(
        reader.audit(),
        principal,
        Permission::Reports,
        endpoint,
        text,
        run,
    )
    .await
    .map_err(|e| anyhow::anyhow!("writing the query audit (no answer without it): {e}"))?;
    result.map_err(|d| anyhow::anyhow!("{}", d.reason()))
}
