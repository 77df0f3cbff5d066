//! `tollgate serve`, `tollgate sql` and `tollgate apikey`: the query API,
//! SQL as a token's principal, and service-account keys.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use chrono::Utc;
use tollgate_ledger::PriceBook;
use tollgate_queries::apikeys::ApiKeyStore;
use tollgate_queries::audit::QueryAudit;
use tollgate_queries::auth::Unauthorized;
use tollgate_queries::encode::{encode, Format};
use tollgate_queries::request::{audited, Denied};
use tollgate_queries::sql::QueryError;
use tollgate_queries::{Authenticator, Permission, Principal, Reader, ReaderConfig, Role};
use tollgate_redactor::Redactor;
use tollgate_storage::Storage;
use tollgate_storage::StorageConfig;

use crate::cli::{ApikeyCommand, ServeArgs, SqlArgs, SqlFormat};
use crate::config::{Config, Loaded};

/// The API keys in `store`, after moving in the key file of earlier
/// versions (`server.auth.api_keys_file`, else `<data_dir>/api_keys.json`)
/// if there is one.
pub(crate) fn api_keys(config: &Config, store: &StorageConfig) -> Result<ApiKeyStore> {
    let keys = ApiKeyStore::open(store)?;
    let old = config
        .server
        .auth
        .api_keys_file
        .clone()
        .unwrap_or_else(|| store.data_dir.join("api_keys.json"));
    if old.is_file() {
        let moved = keys.import_file(&old)?;
        say!(
            "moved {moved} API key(s) of {} into {} (the file is now {}.imported)",
            old.display(),
            keys.description(),
            old.display()
        );
    }
    Ok(keys)
}

/// The authenticator of `config`.
pub(crate) fn authenticator(config: &Config) -> Result<Authenticator> {
    Ok(Authenticator::new(
        &config.server.auth,
        api_keys(config, &config.storage)?,
    )?)
}

/// A reader over `store`, auditing into it.
pub(crate) fn reader(config: &Config, store: &StorageConfig) -> Result<Reader> {
    let book = PriceBook::new(config.pricing.clone())?;
    let redactor = Some(Arc::new(Redactor::new(&config.redaction, store)?));
    let audit = QueryAudit::new(Storage::open(store, "queries")?, redactor);
    Ok(Reader::new(
        ReaderConfig {
            storage: store.clone(),
            ledger: config.ledger.clone(),
            teams: config.teams.clone(),
            shared_teams: config.server.shared_teams.clone(),
            max_rows: config.server.max_rows,
            limits: config.server.limits.clone(),
        },
        book,
        audit,
    ))
}

/// The principal of the token in `path` (an unreadable file is an error;
/// a token that is not accepted is `Unauthorized`, for the audit).
pub(crate) fn principal_of(
    auth: &Authenticator,
    path: &Path,
) -> Result<Result<Principal, Unauthorized>> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("reading the token file {}", path.display()))?;
    Ok(auth.token(token.trim(), Utc::now()))
}

/// A token's reader and principal for a CLI request.
pub(crate) fn as_token(
    config: &Config,
    store: &StorageConfig,
    token: &Path,
) -> Result<(Reader, Result<Principal, Unauthorized>)> {
    let auth = authenticator(config)?;
    Ok((reader(config, store)?, principal_of(&auth, token)?))
}

/// The exit code of a denied CLI request: 3 refused or unauthenticated or
/// forbidden, 2 invalid or failed.
pub(crate) fn exit_code(d: &Denied) -> ExitCode {
    match d {
        Denied::Query(QueryError::Invalid(_) | QueryError::Limit(_) | QueryError::Failed(_)) => {
            ExitCode::from(2)
        }
        _ => ExitCode::from(3),
    }
}

pub fn serve(loaded: Loaded, args: ServeArgs) -> Result<ExitCode> {
    let config = loaded.config;
    let store = config.storage_for(args.data_dir.as_deref())?;
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| config.server.listen.to_string());
    let auth = authenticator(&config)?;
    if config.server.auth.jwt_keys.is_empty() {
        say!("note: no server.auth.jwt_keys configured: only API keys are accepted");
    }
    let reader = reader(&config, &store)?;
    let api = Arc::new(tollgate_queries::api::Api::new(reader, auth));
    let rt = crate::runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        say!(
            "tollgate serve: listening on http://{} (reports, SQL, verify under /v1; /openapi.json; /healthz, /readyz, /metrics); Ctrl-C stops",
            listener.local_addr()?
        );
        let shutdown = async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        tollgate_queries::api::serve(listener, api, shutdown).await?;
        say!("tollgate serve: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

pub fn sql(loaded: Loaded, args: SqlArgs) -> Result<ExitCode> {
    let config = loaded.config;
    let store = config.storage_for(args.data_dir.as_deref())?;
    let (reader, principal) = as_token(&config, &store, &args.token)?;
    let rt = crate::runtime()?;
    let (reader, sql) = (&reader, &args.sql);
    rt.block_on(async {
        let (_, result) = audited(
            reader.audit(),
            principal,
            Permission::Sql,
            "cli sql",
            &args.sql,
            |p| async move {
                let r = reader.sql(&p, sql).await?;
                Ok((r.rows, r))
            },
        )
        .await
        .context("writing the query audit (no answer without it)")?;
        match result {
            Err(d) => {
                say!("tollgate sql: {}", d.reason());
                Ok(exit_code(&d))
            }
            Ok(r) => {
                let f = match args.format {
                    SqlFormat::Table => Format::Table,
                    SqlFormat::Csv => Format::Csv,
                    SqlFormat::Json => Format::Json,
                };
                let bytes = encode(&r.schema, &r.batches, f)?;
                crate::report_cmd::print(&String::from_utf8_lossy(&bytes))?;
                if r.truncated {
                    say!(
                        "note: cut at server.max_rows = {} rows",
                        config.server.max_rows
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

fn duration(name: &str, v: &str) -> Result<chrono::Duration> {
    let d = humantime::parse_duration(v).map_err(|e| anyhow!("{name} {v:?}: {e}"))?;
    Ok(chrono::Duration::from_std(d)?)
}

pub fn apikey(loaded: Loaded, cmd: ApikeyCommand) -> Result<ExitCode> {
    let config = loaded.config;
    let store = |a: &crate::cli::ApikeyFileArgs| -> Result<ApiKeyStore> {
        api_keys(&config, &config.storage_for(a.data_dir.as_deref())?)
    };
    match cmd {
        ApikeyCommand::Create(a) => {
            let roles = a
                .roles
                .iter()
                .map(|r| r.parse::<Role>().map_err(|e| anyhow!("--role: {e}")))
                .collect::<Result<Vec<_>>>()?;
            let store = store(&a.file)?;
            let (key, rec) = store.create(
                &a.name,
                &a.org,
                a.team.as_deref(),
                &roles,
                duration("--expires-in", &a.expires_in)?,
            )?;
            say!(
                "API key {} for {} ({}{}, roles {}), expires {}; stored hashed in {}. The key (shown once):",
                rec.id,
                rec.name,
                rec.org,
                rec.team.as_deref().map(|t| format!("/{t}")).unwrap_or_default(),
                a.roles.join(","),
                rec.expires.to_rfc3339(),
                store.description()
            );
            println!("{key}");
        }
        ApikeyCommand::List(a) => {
            let store = store(&a)?;
            let now = Utc::now();
            println!(
                "{:<13} {:<20} {:<22} {:<26} {:<26} state",
                "id", "name", "org/team", "roles", "expires"
            );
            for k in store.list()? {
                let state = if k.revoked {
                    "revoked"
                } else if k.expires <= now {
                    "expired"
                } else {
                    "valid"
                };
                let roles: Vec<&str> = k.roles.iter().map(|r| r.as_str()).collect();
                println!(
                    "{:<13} {:<20} {:<22} {:<26} {:<26} {state}",
                    k.id,
                    k.name,
                    format!("{}/{}", k.org, k.team.as_deref().unwrap_or("*")),
                    roles.join(","),
                    k.expires.format("%Y-%m-%d %H:%M UTC").to_string()
                );
            }
        }
        ApikeyCommand::Revoke(a) => {
            let k = store(&a.file)?.revoke(&a.id)?;
            say!("revoked API key {} ({})", k.id, k.name);
        }
        ApikeyCommand::Rotate(a) => {
            let store = store(&a.file)?;
            let overlap = duration("--overlap", &a.overlap)?;
            let (key, rec) =
                store.rotate(&a.id, duration("--expires-in", &a.expires_in)?, overlap)?;
            say!(
                "API key {} replaces {} (which keeps working for {}); the new key (shown once):",
                rec.id,
                a.id,
                a.overlap
            );
            println!("{key}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
