//! The command line.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Tollgate: audit, metering and cost allocation for multi-tenant AI platforms.
///
/// MCP gateways and GPU workers emit tagged tool-call and GPU-second events
/// (CloudEvents 1.0 JSON) to Kafka; Tollgate validates them, hashes PII,
/// stores them as Parquet and prices them per team.
///
/// Start with `tollgate demo`: it runs the pipeline on a generated workload
/// with no Kafka and no SMTP server.
#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Configuration file [default: ./tollgate.toml if present].
    #[arg(
        long,
        short,
        global = true,
        env = "TOLLGATE_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More log output (-v info, -vv debug); TOLLGATE_LOG=<filter> overrides.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline on a generated workload, with no Kafka and no SMTP.
    ///
    /// Generates the fixture workload in-process, passes every event through
    /// the stages that exist (decode, upcast, validate), writes the results
    /// to the data directory and prints what happened.
    Demo(DemoArgs),
    /// Consume the raw topic into the audit log (the main job).
    ///
    /// A member of kafka.group_id on kafka.raw_topic: decodes, validates and
    /// redacts every record, stores events and dead letters as Parquet with
    /// a commit record per batch and partition, sends refused records' raw
    /// bytes to kafka.dead_letter_topic, and resumes each partition after its
    /// last commit record. SIGTERM or Ctrl-C commits open batches and stops.
    Run(RunArgs),
    /// Check the audit log: every commit chain and every file's SHA-256.
    ///
    /// Walks each partition's chain of commit records (sequence, hash links,
    /// contiguous offsets, counts) and every file they list (present, size,
    /// SHA-256, row count), and finds files no record lists. Exits 0 when all
    /// holds, 1 naming the first problem otherwise. Read-only.
    Verify(VerifyArgs),
    /// Per partition: what is stored, what Kafka holds, and the lag.
    ///
    /// Reads the commit chains of kafka.raw_topic (committed offset, rows
    /// stored, dead letters, duplicates) and asks the broker for each
    /// partition's high watermark and the group's offset, so that
    /// consumed = stored + dead-lettered + duplicates can be read off.
    Status(StatusArgs),
    /// Produce CloudEvents (NDJSON, one per line) to the raw topic.
    ///
    /// Reads a file or stdin (`tollgate fixtures generate | tollgate emit`)
    /// and produces every line as it is, keyed by the team it names, with an
    /// idempotent producer (acks=all). Creates the topic when missing. Exits
    /// non-zero unless the broker acknowledged every record.
    Emit(EmitArgs),
    /// Serve the HTTP gateway: POST /v1/events, GET /metrics, GET /healthz.
    ///
    /// Validates each request's events (400 with a reason per refused
    /// event), applies each tenant's rate limit (429), produces them to
    /// kafka.raw_topic and answers 202 once the broker acknowledged them.
    Gateway(GatewayArgs),
    /// Work with dead letters.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Ledger reports: chargeback, quota status, anomalies.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Serve the query API: reports, tenant-scoped SQL, verify, downloads
    /// (JSON, CSV, Arrow, Parquet), /openapi.json, /healthz, /readyz, /metrics.
    ///
    /// Every /v1 request needs a bearer token (a JWT signed RS256 with
    /// claims org, team, roles; or an API key) and reads only the rows of
    /// its principal; each request is written to the query audit.
    Serve(ServeArgs),
    /// Run one SQL query as the principal of a token, through the same
    /// authorisation and audit as the API.
    Sql(SqlArgs),
    /// Manage API keys for service accounts (stored hashed, with expiry).
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Quota and anomaly emails to team leads, and the quota decision API.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Quota decisions for scripts.
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// Maintain the ledger's hourly rollups.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Generate test workloads.
    #[command(subcommand)]
    Fixtures(FixturesCommand),
    /// Work with encoded events.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Check or show the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Try the PII redaction on samples, compute tokens, manage tenant keys.
    Pii(PiiArgs),
}

/// Options of `tollgate run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Do not evaluate alerts after commits (another process runs
    /// `tollgate alerts run`).
    #[arg(long)]
    pub no_alerts: bool,
    /// Name of this instance in commit records [default: host name and pid].
    #[arg(long)]
    pub writer_id: Option<String>,
    /// Commit and stop once no record has arrived for this long and every
    /// partition of the topic is stored up to its high watermark (for
    /// backfills and tests), such as `10s`.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub exit_when_idle: Option<std::time::Duration>,
    /// Serve Prometheus metrics on this address, such as `127.0.0.1:9464`
    /// [default: ingest.metrics_addr; none].
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
}

/// Options of `tollgate status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Data directory to read [default: storage.url, else storage.data_dir].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Options of `tollgate emit`.
#[derive(Debug, Args)]
pub struct EmitArgs {
    /// NDJSON file to read; `-` for stdin.
    #[arg(default_value = "-", value_name = "FILE")]
    pub input: PathBuf,
    /// Topic [default: kafka.raw_topic].
    #[arg(long)]
    pub topic: Option<String>,
    /// Bootstrap servers [default: kafka.brokers].
    #[arg(long)]
    pub brokers: Option<String>,
    /// Validate every line first and produce only valid events; refused
    /// lines are listed on stderr with their reason, and the exit code is 1.
    #[arg(long)]
    pub validate: bool,
    /// No summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Options of `tollgate gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on [default: gateway.listen].
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
}

/// `tollgate dlq ...`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Re-feed dead letters to the raw topic once their cause is fixed.
    ///
    /// Reads kafka.dead_letter_topic from its start up to its current end,
    /// decodes each record with the current configuration, and produces the
    /// ones that now pass to kafka.raw_topic with their original key. The
    /// ones that still fail stay where they are and are counted by reason.
    /// Replaying twice is safe: `tollgate run` drops resent event ids.
    Replay(ReplayArgs),
}

/// Options of `tollgate dlq replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Replay only dead letters with this reason code (repeatable).
    #[arg(long = "reason", value_name = "CODE")]
    pub reasons: Vec<String>,
    /// Say what would be replayed; produce nothing and commit no offset.
    #[arg(long)]
    pub dry_run: bool,
}

/// `tollgate report ...`
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// A month's cost per team, with breakdowns; the team lines add up to the
    /// total to the smallest currency unit.
    Chargeback(ChargebackArgs),
    /// Each configured team's month-to-date spend, burn, status and forecast.
    Quota(QuotaArgs),
    /// Teams whose last 24 hours cost over 2x their 30-day daily average.
    Anomalies(AnomalyArgs),
    /// Freeze a month's chargeback: stored with its SHA-256, never rewritten;
    /// later events for it become adjustment lines in the next open month.
    Close(CloseArgs),
}

/// Options of `tollgate report close`.
#[derive(Debug, Args)]
pub struct CloseArgs {
    /// The month, `YYYY-MM`.
    #[arg(long)]
    pub month: String,
    /// Where to read, and the zone.
    #[command(flatten)]
    pub common: ReportCommon,
}

/// Where a report reads and how it prints.
#[derive(Debug, Args)]
pub struct ReportCommon {
    /// Data directory to read [default: storage.url, else storage.data_dir].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Time zone months are cut in [default: ledger.timezone].
    #[arg(long, value_name = "IANA ZONE")]
    pub tz: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// Read the raw tables only, not the hourly rollups (the same figures,
    /// computed ad hoc) [default: ledger.rollups].
    #[arg(long)]
    pub no_rollups: bool,
    /// Run as the principal of this bearer token (a JWT or an API key, in a
    /// file): only its rows, and the request is written to the query audit.
    #[arg(long, value_name = "FILE")]
    pub token: Option<PathBuf>,
}

/// Options of `tollgate serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: server.listen].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Data directory [default: storage.url, else storage.data_dir].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Options of `tollgate sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// File holding the bearer token (a JWT or an API key).
    #[arg(long, value_name = "FILE")]
    pub token: PathBuf,
    /// The query.
    pub sql: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
    pub format: SqlFormat,
    /// Data directory [default: storage.url, else storage.data_dir].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `tollgate sql` output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqlFormat {
    /// A text table.
    Table,
    /// CSV with a header.
    Csv,
    /// A JSON array of objects.
    Json,
}

/// `tollgate apikey ...`.
#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Issue a key; it is printed once and stored only as its SHA-256.
    Create(ApikeyCreateArgs),
    /// List the keys (never the keys themselves).
    List(ApikeyFileArgs),
    /// Revoke a key by id.
    Revoke(ApikeyIdArgs),
    /// Issue a new key with the same scope; the old one expires after --overlap.
    Rotate(ApikeyRotateArgs),
}

/// Where the keys are.
#[derive(Debug, Args)]
pub struct ApikeyFileArgs {
    /// Data directory (a local storage) holding the keys [default: storage.url, else storage.data_dir].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Options of `tollgate apikey create`.
#[derive(Debug, Args)]
pub struct ApikeyCreateArgs {
    /// What the key is for, such as `ci-chargeback`.
    #[arg(long)]
    pub name: String,
    /// Organisation (tenant).
    #[arg(long)]
    pub org: String,
    /// Team, for team roles (viewer, contributor, owner).
    #[arg(long)]
    pub team: Option<String>,
    /// Roles (repeat or comma-separate): viewer, contributor, owner, admin, finance, auditor.
    #[arg(long = "role", value_delimiter = ',', required = true)]
    pub roles: Vec<String>,
    /// Validity, such as 90d.
    #[arg(long, default_value = "90d")]
    pub expires_in: String,
    #[command(flatten)]
    pub file: ApikeyFileArgs,
}

/// A key id.
#[derive(Debug, Args)]
pub struct ApikeyIdArgs {
    /// The key's id (the part after `tgk_`).
    pub id: String,
    #[command(flatten)]
    pub file: ApikeyFileArgs,
}

/// Options of `tollgate apikey rotate`.
#[derive(Debug, Args)]
pub struct ApikeyRotateArgs {
    /// The key's id.
    pub id: String,
    /// Validity of the new key.
    #[arg(long, default_value = "90d")]
    pub expires_in: String,
    /// How long the old key keeps working.
    #[arg(long, default_value = "24h")]
    pub overlap: String,
    #[command(flatten)]
    pub file: ApikeyFileArgs,
}

/// Report output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// A text table.
    Table,
    /// CSV (chargeback only).
    Csv,
    /// Parquet, written to `--output` (chargeback only).
    Parquet,
    /// JSON.
    Json,
}

/// Options of `tollgate report chargeback`.
#[derive(Debug, Args)]
pub struct ChargebackArgs {
    /// The month, `YYYY-MM`.
    #[arg(long)]
    pub month: String,
    /// With the table format: each team's breakdowns too.
    #[arg(long)]
    pub detail: bool,
    /// Write the report to this file instead of stdout (required for Parquet).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Where to read, and the format.
    #[command(flatten)]
    pub common: ReportCommon,
}

/// Options of `tollgate report quota`.
#[derive(Debug, Args)]
pub struct QuotaArgs {
    /// Evaluation time, RFC 3339 [default: now].
    #[arg(long, value_parser = moment, value_name = "TIME")]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Where to read, and the format.
    #[command(flatten)]
    pub common: ReportCommon,
}

/// Options of `tollgate report anomalies`.
#[derive(Debug, Args)]
pub struct AnomalyArgs {
    /// Evaluation time t, RFC 3339: the window is (t - 24 h, t] [default: now].
    #[arg(long, value_parser = moment, value_name = "TIME")]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Where to read, and the format.
    #[command(flatten)]
    pub common: ReportCommon,
}

/// Options of `tollgate verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Data directory to check [default: storage.url, else storage.data_dir].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print the full report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `tollgate pii ...`
#[derive(Debug, Args)]
pub struct PiiArgs {
    /// Data directory holding the key store [default: storage.data_dir].
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: PiiCommand,
}

/// The `pii` subcommands.
#[derive(Debug, Subcommand)]
pub enum PiiCommand {
    /// Redact text lines from stdin with a tenant's policy and key, one line
    /// out per line in (for trying the detectors on real samples).
    Redact {
        /// The tenant whose key and custom patterns apply.
        #[arg(long)]
        tenant: String,
        /// Treat each line as a JSON document: redact its strings in place.
        #[arg(long)]
        json: bool,
    },
    /// Print the token a value gets for a tenant, to search the audit log by value.
    Token {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The kind: email, phone, card, ssn, iban, ipv4, ipv6, jwt, aws_key,
        /// api_key, bearer, private_key, or a custom pattern's name.
        #[arg(long)]
        kind: String,
        /// The key id, for data redacted before a rotation [default: the active key].
        #[arg(long)]
        key_id: Option<String>,
        /// The value, as it would appear in user content.
        value: String,
    },
    /// List the stored events and dead letters of a tenant that contain a value.
    ///
    /// Computes the value's token under each of the tenant's keys (active and
    /// retired) and searches that tenant's rows only.
    Find {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The kind, as for `pii token`.
        #[arg(long)]
        kind: String,
        /// The value, as it would appear in user content.
        value: String,
    },
    /// List tenants and their key ids (never the keys).
    Keys,
    /// Give a tenant a fresh active key; older keys stay for old tokens.
    RotateKey {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Delete every key of a tenant (crypto-shredding): its tokens can never
    /// again be linked to a value. Irreversible.
    Shred {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Confirm: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

/// Options of `tollgate demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write results [default: storage.data_dir, ./tollgate-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Store and verify only: skip the ledger reports at the end (for
    /// benchmarks on large workloads).
    #[arg(long)]
    pub skip_ledger: bool,
    /// The workload to generate.
    #[command(flatten)]
    pub workload: WorkloadArgs,
}

/// The shape of a generated workload.
#[derive(Debug, Args, Clone)]
pub struct WorkloadArgs {
    /// Seed of every random choice; the same seed gives the same bytes.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Number of days.
    #[arg(long, default_value_t = 35, value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: u32,
    /// Number of teams (over two tenants; 2 or more).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=500))]
    pub teams: u64,
    /// Average events per day (GPU usage plus tool calls).
    #[arg(long, default_value_t = 2000)]
    pub events_per_day: u32,
    /// First day (UTC) [default: so that the last day is yesterday].
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = day)]
    pub start: Option<NaiveDate>,
    /// Share of bad events, 0 to 0.5.
    #[arg(long, default_value_t = 0.01)]
    pub invalid_rate: f64,
}

/// `tollgate fixtures ...`
#[derive(Debug, Subcommand)]
pub enum FixturesCommand {
    /// Write a deterministic workload as NDJSON (to a file or stdout) or to Kafka.
    ///
    /// 5 teams in 2 tenants, 4-12 users each, tool calls with PII in their
    /// arguments, GPU jobs of every workload kind and tier, one team with a
    /// spend spike, one that crosses 80 % and 100 % of its quota, v0 and v1.1
    /// producers beside v1, and about 1 % bad events of every kind. A summary
    /// of the scenario goes to stderr.
    Generate(GenerateArgs),
}

/// Options of `tollgate fixtures generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The workload to generate.
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// NDJSON output file; `-` for stdout.
    #[arg(long, short, default_value = "-", value_name = "FILE")]
    pub output: PathBuf,
    /// Produce to Kafka (kafka.brokers, kafka.raw_topic) instead of writing NDJSON.
    #[arg(long, conflicts_with = "output")]
    pub kafka: bool,
    /// Override kafka.brokers for --kafka.
    #[arg(long, requires = "kafka", value_name = "HOST:PORT")]
    pub brokers: Option<String>,
    /// Override kafka.raw_topic for --kafka.
    #[arg(long, requires = "kafka")]
    pub topic: Option<String>,
    /// Also write the pricing and teams config that fits the workload (TOML).
    #[arg(long, value_name = "FILE")]
    pub config_out: Option<PathBuf>,
    /// Also write the scenario report (JSON): daily costs, spike, quota crossings.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print no summary.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `tollgate events ...`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Decode and validate NDJSON events, one result per line.
    ///
    /// Prints `ok` with the kind and version, or the reason (field: problem).
    /// Exits 0 when every line is valid, 1 when any is not.
    Validate(ValidateArgs),
}

/// Options of `tollgate events validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// NDJSON file; `-` for stdin.
    #[arg(default_value = "-")]
    pub input: PathBuf,
    /// Check the skew window against this time instead of now (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = moment)]
    pub received_at: Option<DateTime<Utc>>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print only the totals.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `tollgate config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the configuration, and say what it holds.
    Check,
    /// Print the effective configuration (file plus environment), secrets left out.
    Show,
}

/// `tollgate ledger ...`.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Roll up the commit records the rollups do not cover yet (reports do
    /// this themselves before reading).
    Refresh(LedgerArgs),
    /// Recompute every rollup from the raw tables with the current price
    /// book (after a price correction, or to check them: the reports give
    /// the same figures before and after).
    Rebuild(LedgerArgs),
    /// Show the rollups' version, coverage and files.
    Status(LedgerArgs),
}

/// Options of `tollgate ledger ...`.
#[derive(Debug, Args)]
pub struct LedgerArgs {
    /// Data directory [default: storage.url, else storage.data_dir].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `tollgate alerts ...`.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Evaluate quotas and the 2x rule every `alerts.evaluate_every` (or
    /// once), email the team leads (SMTP, or `.eml` files in the outbox
    /// folder without `[alerts.smtp]`), exactly once per alert, and serve the
    /// quota decision API with `--listen`.
    Run(AlertsRunArgs),
    /// Evaluate at every step of a past period (backfill after an outage,
    /// or a replay of a workload): the same alerts and emails as if the
    /// evaluator had run then, each still at most once.
    Replay(AlertsReplayArgs),
    /// The alerts raised and their delivery state.
    Status(LedgerArgs),
}

/// Options of `tollgate alerts run`.
#[derive(Debug, Args)]
pub struct AlertsRunArgs {
    /// Evaluate and deliver once, then exit.
    #[arg(long)]
    pub once: bool,
    /// With --once: the evaluation time, RFC 3339 [default: now].
    #[arg(long, value_parser = moment, value_name = "TIME")]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Serve GET /v1/quota/{team}, POST /v1/admission, POST /admin/reload
    /// and /metrics on this address, such as 127.0.0.1:8091.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Data directory [default: storage.url, else storage.data_dir].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Options of `tollgate alerts replay`.
#[derive(Debug, Args)]
pub struct AlertsReplayArgs {
    /// First evaluation time, RFC 3339.
    #[arg(long, value_parser = moment, value_name = "TIME")]
    pub from: chrono::DateTime<chrono::Utc>,
    /// Last evaluation time, RFC 3339.
    #[arg(long, value_parser = moment, value_name = "TIME")]
    pub to: chrono::DateTime<chrono::Utc>,
    /// Step between evaluations.
    #[arg(long, default_value = "1h")]
    pub every: String,
    /// Data directory [default: storage.url, else storage.data_dir].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `tollgate quota ...`.
#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Exit 0 when the team may start new workloads, 1 when its monthly
    /// quota is used up (2 on errors).
    Check(QuotaCheckArgs),
}

/// Options of `tollgate quota check`.
#[derive(Debug, Args)]
pub struct QuotaCheckArgs {
    /// The team.
    #[arg(long)]
    pub team: String,
    /// The tenant, when two tenants have a team of that name.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Evaluation time, RFC 3339 [default: now].
    #[arg(long, value_parser = moment, value_name = "TIME")]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Treat a team outside the teams directory as allowed instead of an error.
    #[arg(long)]
    pub allow_unknown: bool,
    /// Data directory [default: storage.url, else storage.data_dir].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Years a time or day given on the command line may fall in: wide enough
/// for any real use, narrow enough that no date sum can overflow.
const YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

/// Parses an RFC 3339 time (a `--at`, `--from`, `--to`) between 1970 and 9999.
pub fn moment(s: &str) -> Result<DateTime<Utc>, String> {
    use chrono::Datelike;
    let t = DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-11-03T14:00:00Z ({e})"))?
        .with_timezone(&Utc);
    in_years(t.year()).map(|()| t)
}

/// Parses a day (`YYYY-MM-DD`) between 1970 and 9999.
pub fn day(s: &str) -> Result<NaiveDate, String> {
    use chrono::Datelike;
    let d: NaiveDate = s
        .parse()
        .map_err(|e| format!("expected a day such as 2026-11-03 ({e})"))?;
    in_years(d.year()).map(|()| d)
}

fn in_years(year: i32) -> Result<(), String> {
    if YEARS.contains(&year) {
        Ok(())
    } else {
        Err(format!(
            "the year must be {} to {}",
            YEARS.start(),
            YEARS.end()
        ))
    }
}
