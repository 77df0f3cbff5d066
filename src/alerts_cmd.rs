//! `tollgate alerts run | replay | status` and `tollgate quota check`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use tollgate_alerts::admission::{decide, find};
use tollgate_alerts::api::{self, Api};
use tollgate_alerts::metrics::AlertMetrics;
use tollgate_alerts::store::AlertStore;
use tollgate_alerts::{Cycle, Evaluator};
use tollgate_ledger::{report, LedgerContext, PriceBook};
use tollgate_storage::StorageConfig;
use tracing::warn;

use crate::cli::{AlertsCommand, QuotaCheckArgs};
use crate::config::{Config, Loaded};

/// The evaluator of `config` over `store`, its state in the storage's
/// `alerts/`, and a ledger context for it.
pub(crate) async fn evaluator(
    config: &Config,
    store: &StorageConfig,
    metrics: AlertMetrics,
) -> Result<(Evaluator, LedgerContext)> {
    let book = PriceBook::new(config.pricing.clone())?;
    let ctx = LedgerContext::open(store, &book).await?;
    let data_dir = &store.data_dir;
    let outbox = if config.alerts.outbox_dir.is_absolute() {
        config.alerts.outbox_dir.clone()
    } else {
        data_dir.join(&config.alerts.outbox_dir)
    };
    let ev = Evaluator::new(
        config.alerts.clone(),
        config.teams.clone(),
        config.ledger.clone(),
        book.currency(),
        alert_store(store).await?,
        outbox,
        metrics,
    )?;
    Ok((ev, ctx))
}

/// The alert state in `store`, after moving in the local state folder of
/// earlier versions (`<data_dir>/alerts/`) if there is one.
async fn alert_store(store: &StorageConfig) -> Result<AlertStore> {
    let st = AlertStore::open(store, tollgate_alerts::store::PREFIX)?;
    let old = store.data_dir.join("alerts").join("claimed");
    if store.url.is_none() {
        let hashed = st.upgrade_in_place().await?;
        if hashed > 0 {
            say!("brought {hashed} alert claim(s) of an earlier version to this layout");
        }
    } else if old.is_dir() {
        let moved = st.import_dir(&store.data_dir.join("alerts")).await?;
        say!(
            "moved {moved} alert claim(s) of {} into {}",
            store.data_dir.join("alerts").display(),
            st.description()
        );
    }
    Ok(st)
}

/// One line per raised alert and a delivery summary.
pub(crate) fn describe(c: &Cycle) -> String {
    let mut s = String::new();
    for a in &c.raised {
        s.push_str(&format!(
            "raised {} {}/{} at {} ({} % of quota{}) -> {}\n",
            a.kind.as_str(),
            a.tenant,
            a.team,
            a.at.format("%Y-%m-%d %H:%M UTC"),
            a.burn_pct,
            a.ratio
                .map(|r| format!(", {r}x daily average"))
                .unwrap_or_default(),
            if a.to.is_empty() {
                "no leads configured".to_string()
            } else {
                a.to.join(", ")
            }
        ));
    }
    let d = &c.delivered;
    if !d.sent.is_empty() || d.deferred > 0 || d.failed > 0 || d.waiting > 0 || d.elsewhere > 0 {
        s.push_str(&format!(
            "delivered {} emails; {} deferred for a retry, {} failed for good, {} waiting for their retry time{}\n",
            d.sent.len(),
            d.deferred,
            d.failed,
            d.waiting,
            if d.elsewhere > 0 {
                format!(", {} being delivered by another evaluator", d.elsewhere)
            } else {
                String::new()
            }
        ));
    }
    s
}

/// Most evaluations one `alerts replay` runs: a year of 5-minute steps.
const MAX_REPLAY_CYCLES: i64 = 106_000;

fn parse_step(s: &str) -> Result<Duration> {
    humantime::parse_duration(s)
        .with_context(|| format!("--every {s}: expected a duration such as 1h or 30m"))
}

pub fn run(loaded: Loaded, cmd: AlertsCommand) -> Result<ExitCode> {
    let config_path: Option<PathBuf> = loaded.path.clone();
    let config = loaded.config;
    let rt = crate::runtime()?;
    rt.block_on(async move {
        match cmd {
            AlertsCommand::Run(args) => {
                let store = config.storage_for(args.data_dir.as_deref())?;
                let metrics = AlertMetrics::new();
                let (mut ev, mut ctx) = evaluator(&config, &store, metrics.clone()).await?;
                if args.once {
                    let at = args.at.unwrap_or_else(Utc::now);
                    let c = ev.cycle(&mut ctx, at).await?;
                    print!("{}", describe(&c));
                    say!(
                        "alerts: evaluated at {}; {} new alerts; emails go to {}",
                        at.format("%Y-%m-%d %H:%M:%S UTC"),
                        c.raised.len(),
                        ev.destination()
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                if args.at.is_some() {
                    bail!("--at evaluates once: use it with --once (or use `tollgate alerts replay`)");
                }
                let reload_path = config_path.clone();
                let reload = move || -> Result<Vec<tollgate_ledger::TeamConfig>, String> {
                    Config::load(reload_path.as_deref())
                        .map(|l| l.config.teams)
                        .map_err(|e| format!("{e:#}"))
                };
                let api = match args.listen.clone() {
                    Some(addr) => {
                        let book = PriceBook::new(config.pricing.clone())?;
                        let api_ctx = LedgerContext::open(&store, &book).await?;
                        let api = Arc::new(Api::new(
                            api_ctx,
                            config.teams.clone(),
                            config.ledger.clone(),
                            book.currency(),
                            config.alerts.admission_cache,
                            metrics.clone(),
                            Some(Box::new(reload.clone())),
                        ));
                        let listener = tokio::net::TcpListener::bind(&addr)
                            .await
                            .with_context(|| format!("listening on {addr}"))?;
                        say!(
                            "tollgate alerts: quota API at http://{}/v1/quota/{{team}} and /v1/admission",
                            listener.local_addr()?
                        );
                        let app = api::router(api.clone());
                        tokio::spawn(async move {
                            if let Err(e) = axum::serve(listener, app).await {
                                warn!(error = %e, "the quota API stopped");
                            }
                        });
                        Some(api)
                    }
                    None => None,
                };
                say!(
                    "tollgate alerts: evaluating every {}; emails go to {}; SIGHUP reloads the teams directory; Ctrl-C stops",
                    humantime::format_duration(config.alerts.evaluate_every),
                    ev.destination()
                );
                let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
                let mut ticker = tokio::time::interval(config.alerts.evaluate_every);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => break,
                        _ = sigterm.recv() => break,
                        _ = sighup.recv() => {
                            match reload() {
                                Ok(teams) => {
                                    say!("tollgate alerts: reloaded the teams directory ({} teams)", teams.len());
                                    ev.set_teams(teams);
                                    if let Some(api) = &api {
                                        if let Err(e) = api.reload().await {
                                            warn!(error = %e, "reloading the API's teams failed");
                                        }
                                    }
                                }
                                Err(e) => say!("tollgate alerts: reload failed, keeping the previous teams: {e}"),
                            }
                        }
                        _ = ticker.tick() => {
                            match ev.cycle(&mut ctx, Utc::now()).await {
                                Ok(c) => say!("{}", describe(&c)),
                                Err(e) => warn!(error = %e, "alert evaluation failed; retrying next cycle"),
                            }
                        }
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            AlertsCommand::Replay(args) => {
                let store = config.storage_for(args.data_dir.as_deref())?;
                let (ev, mut ctx) = evaluator(&config, &store, AlertMetrics::new()).await?;
                let step = parse_step(&args.every)?;
                if args.to < args.from {
                    bail!("--to is before --from");
                }
                let step = chrono::Duration::from_std(step)
                    .ok()
                    .filter(|s| *s >= chrono::Duration::seconds(1))
                    .context("--every must be at least 1s (and at most a few thousand years)")?;
                let span = (args.to - args.from).num_milliseconds();
                let planned = span / step.num_milliseconds() + 1;
                if planned > MAX_REPLAY_CYCLES {
                    bail!(
                        "--every {} from {} to {} would be about {planned} evaluations; the limit is {MAX_REPLAY_CYCLES}: choose a longer step or a shorter range",
                        args.every,
                        args.from.to_rfc3339(),
                        args.to.to_rfc3339(),
                    );
                }
                let mut at = Some(args.from);
                let mut cycles = 0;
                let mut raised = 0;
                while let Some(t) = at.filter(|t| *t <= args.to) {
                    let c = ev.cycle(&mut ctx, t).await?;
                    print!("{}", describe(&c));
                    raised += c.raised.len();
                    cycles += 1;
                    at = t.checked_add_signed(step);
                }
                say!(
                    "alerts: {cycles} evaluations from {} to {}; {raised} new alerts; emails go to {}",
                    args.from.format("%Y-%m-%d %H:%M UTC"),
                    args.to.format("%Y-%m-%d %H:%M UTC"),
                    ev.destination()
                );
                Ok(ExitCode::SUCCESS)
            }
            AlertsCommand::Status(args) => {
                let store = config.storage_for(args.data_dir.as_deref())?;
                let st = AlertStore::open(&store, tollgate_alerts::store::PREFIX)?;
                let claimed = st.claimed().await?;
                let pending = st.pending().await?;
                let counts = st.counts().await?;
                let mut retries = std::collections::HashMap::new();
                for c in &pending {
                    if let Some(r) = st.retry(&c.alert.id).await? {
                        retries.insert(c.alert.id.clone(), r);
                    }
                }
                if args.json {
                    let rows: Vec<_> = claimed
                        .iter()
                        .map(|c| {
                            let id = &c.alert.id;
                            serde_json::json!({
                                "id": id, "kind": c.alert.kind, "tenant": c.alert.tenant, "team": c.alert.team,
                                "at": c.alert.at, "recipients": c.recipients.len(),
                                "state": if pending.iter().any(|p| &p.alert.id == id) { "pending" } else { "done" },
                                "retry": retries.get(id),
                            })
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    let (n, sent, failed) = counts;
                    println!(
                        "{n} alerts raised: {sent} delivered, {failed} failed for good, {} pending",
                        pending.len()
                    );
                    for c in &claimed {
                        println!(
                            "  {} {:<16} {}/{} at {}{}",
                            c.alert.id,
                            c.alert.kind.as_str(),
                            c.alert.tenant,
                            c.alert.team,
                            c.alert.at.format("%Y-%m-%d %H:%M UTC"),
                            retries
                                .get(&c.alert.id)
                                .map(|r| format!(" (pending: {} attempts, next {}, last error: {})", r.attempts, r.next_at.format("%H:%M:%S"), r.last_error))
                                .unwrap_or_default()
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// `tollgate quota check`: exit 0 when the team may start workloads, 1 when
/// it is blocked.
pub fn quota_check(loaded: Loaded, args: QuotaCheckArgs) -> Result<ExitCode> {
    let config = loaded.config;
    let rt = crate::runtime()?;
    rt.block_on(async move {
        let store = config.storage_for(args.data_dir.as_deref())?;
        let book = PriceBook::new(config.pricing.clone())?;
        let ctx = crate::report_cmd::open_ledger(&config, &store, &book, false).await?;
        let at: DateTime<Utc> = args.at.unwrap_or_else(Utc::now);
        let (_, lines) =
            report::quota(&ctx, &config.teams, at, &config.ledger.timezone, book.currency()).await?;
        let line = find(&lines, args.tenant.as_deref(), &args.team).map_err(anyhow::Error::msg)?;
        if line.is_none() && !args.allow_unknown {
            bail!(
                "team: {:?} is not in the teams directory ([[teams]] in the config); --allow-unknown treats such teams as allowed",
                args.team
            );
        }
        let d = decide(&args.team, line, book.currency());
        println!("{}: {}", d.decision, d.reason);
        Ok(if d.allow { ExitCode::SUCCESS } else { ExitCode::from(1) })
    })
}
