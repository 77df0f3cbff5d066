//! The alert state, in the storage beside the tables (so every evaluator
//! on that storage shares it, and deleting a `data_dir` loses nothing):
//!
//! - `alerts/claimed/<id>.json`: the alert and its rendered email, created
//!   with create-if-absent: an alert raised again, by this process after a
//!   restart or by another evaluator, finds it and sends nothing.
//! - `alerts/anomaly/<team hash>/<window>.json`: taken with create-if-absent
//!   before an anomaly is claimed, so two evaluators raising a team's
//!   anomaly at slightly different times send one email per
//!   `anomaly_repeat` window.
//! - `alerts/sending/<id>/<attempt>.json`: the lease of one delivery
//!   attempt, created with create-if-absent: of two evaluators only the one
//!   that took the attempt sends. An attempt whose lease is older than
//!   [`LEASE`] with no outcome (its sender died) is taken again.
//! - `alerts/sent/<id>.json`, `alerts/failed/<id>.json`: the outcome; an
//!   email with neither is pending.
//! - `alerts/retry/<id>.json`: attempts so far and when to try next.
//! - `alerts/audited/<id>.json`: its row is in the `alerts` table.
//!
//! `tollgate verify` checks every claim ([`verify`]).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tollgate_storage::StorageConfig;
use tollgate_storage::{sha256_hex, DerivedChain, Problem, Storage, VerifyReport};

use crate::{Alert, AlertKind, Error};

/// How long a delivery attempt's lease holds off other evaluators: longer
/// than any SMTP exchange.
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(600);

/// Where the state is, under the storage root, unless told otherwise.
pub const PREFIX: &str = "alerts/";

/// An alert with its email, as claimed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claimed {
    /// The alert.
    pub alert: Alert,
    /// The envelope sender.
    pub from: String,
    /// Every recipient (to and cc).
    pub recipients: Vec<String>,
    /// The formatted email (RFC 5322, 7-bit), `None` without recipients.
    pub message: Option<String>,
    /// When it was claimed.
    pub claimed_at: DateTime<Utc>,
    /// SHA-256 of the fields above as compact JSON, so that an edited claim
    /// (another recipient, another text) shows in `verify`.
    #[serde(default)]
    pub content_sha256: String,
}

impl Claimed {
    /// SHA-256 of the alert, sender, recipients, message and time.
    pub fn content_hash(&self) -> Result<String, Error> {
        let bytes = serde_json::to_vec(&(
            &self.alert,
            &self.from,
            &self.recipients,
            &self.message,
            &self.claimed_at,
        ))
        .map_err(|e| Error::State {
            path: self.alert.id.clone(),
            message: e.to_string(),
        })?;
        Ok(sha256_hex(&bytes))
    }
}

/// When to try an email again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Retry {
    /// Attempts so far.
    pub attempts: u32,
    /// Not before.
    pub next_at: DateTime<Utc>,
    /// The last error.
    pub last_error: String,
}

/// An outcome record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// When.
    pub at: DateTime<Utc>,
    /// The relay's answer, the outbox file, or the error.
    pub detail: String,
}

/// A delivery attempt's lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lease {
    at: DateTime<Utc>,
    by: String,
}

fn state_err(path: &str) -> impl Fn(tollgate_storage::StorageError) -> Error + '_ {
    move |e| Error::State {
        path: path.to_string(),
        message: e.to_string(),
    }
}

fn json_err(path: &str) -> impl Fn(serde_json::Error) -> Error + '_ {
    move |e| Error::State {
        path: path.to_string(),
        message: e.to_string(),
    }
}

/// The alert state in one storage.
#[derive(Debug)]
pub struct AlertStore {
    storage: Storage,
    prefix: String,
    /// Claims are never rewritten: each is read once.
    claims: Mutex<HashMap<String, Claimed>>,
    /// The `alerts` audit table.
    audit: tollgate_storage::audit_log::AuditLog,
}

impl AlertStore {
    /// The state under `prefix` (such as [`PREFIX`]) in `storage`.
    pub fn open(storage: &StorageConfig, prefix: &str) -> Result<Self, Error> {
        Ok(Self {
            storage: Storage::open(storage, "alerts").map_err(state_err(prefix))?,
            prefix: prefix.to_string(),
            claims: Mutex::new(HashMap::new()),
            audit: crate::audit::log(
                Storage::open(storage, "alerts").map_err(state_err(crate::audit::DIR))?,
            ),
        })
    }

    /// The `alerts` audit table.
    pub fn audit_log(&self) -> &tollgate_storage::audit_log::AuditLog {
        &self.audit
    }

    /// Where the state is, for messages.
    pub fn description(&self) -> String {
        format!(
            "{}/{}",
            self.storage.description().trim_end_matches('/'),
            self.prefix
        )
    }

    fn path(&self, dir: &str, id: &str) -> String {
        format!("{}{dir}/{id}.json", self.prefix)
    }

    async fn exists(&self, path: &str) -> Result<bool, Error> {
        self.storage.exists(path).await.map_err(state_err(path))
    }

    async fn create(&self, path: &str, bytes: Vec<u8>) -> Result<bool, Error> {
        self.storage
            .create(path, bytes)
            .await
            .map_err(state_err(path))
    }

    /// The ids of the objects under `dir`.
    async fn ids(&self, dir: &str) -> Result<HashSet<String>, Error> {
        let prefix = format!("{}{dir}/", self.prefix);
        Ok(self
            .storage
            .list_files(&prefix)
            .await
            .map_err(state_err(&prefix))?
            .iter()
            .filter_map(|p| p.strip_prefix(&prefix)?.strip_suffix(".json"))
            .map(str::to_string)
            .collect())
    }

    /// Whether the alert was claimed already.
    pub async fn is_claimed(&self, id: &str) -> Result<bool, Error> {
        self.exists(&self.path("claimed", id)).await
    }

    /// Claims an alert: `false` if it was claimed before (by anyone).
    pub async fn claim(&self, c: &Claimed) -> Result<bool, Error> {
        let path = self.path("claimed", &c.alert.id);
        let mut c = c.clone();
        c.content_sha256 = c.content_hash()?;
        let mut bytes = serde_json::to_vec_pretty(&c).map_err(json_err(&path))?;
        bytes.push(b'\n');
        self.create(&path, bytes).await
    }

    /// Takes `alert`'s anomaly window (`window` long): `false` when another
    /// evaluator raised an anomaly of that team in the same window.
    pub async fn take_anomaly_window(
        &self,
        alert: &Alert,
        window: std::time::Duration,
    ) -> Result<bool, Error> {
        let team = hex::encode(&Sha256::digest(format!("{}/{}", alert.tenant, alert.team))[..8]);
        let slot = alert
            .at
            .timestamp()
            .div_euclid(window.as_secs().max(1) as i64);
        let path = format!("{}anomaly/{team}/{slot}.json", self.prefix);
        self.create(&path, alert.id.clone().into_bytes()).await
    }

    /// Every claimed alert, oldest first.
    pub async fn claimed(&self) -> Result<Vec<Claimed>, Error> {
        let prefix = format!("{}claimed/", self.prefix);
        let paths = self
            .storage
            .list_files(&prefix)
            .await
            .map_err(state_err(&prefix))?;
        let known: HashSet<String> = self
            .claims
            .lock()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default();
        for p in paths.iter().filter(|p| !known.contains(*p)) {
            if !p.ends_with(".json") {
                continue;
            }
            let bytes = self.storage.read(p).await.map_err(state_err(p))?;
            let c: Claimed = serde_json::from_slice(&bytes).map_err(json_err(p))?;
            if let Ok(mut cache) = self.claims.lock() {
                cache.insert(p.clone(), c);
            }
        }
        let mut out: Vec<Claimed> = self
            .claims
            .lock()
            .map(|c| paths.iter().filter_map(|p| c.get(p).cloned()).collect())
            .unwrap_or_default();
        out.sort_by(|a, b| {
            a.claimed_at
                .cmp(&b.claimed_at)
                .then(a.alert.id.cmp(&b.alert.id))
        });
        Ok(out)
    }

    /// The latest anomaly alert claimed for a team.
    pub async fn last_anomaly(
        &self,
        tenant: &str,
        team: &str,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        Ok(self
            .claimed()
            .await?
            .iter()
            .filter(|c| {
                c.alert.kind == AlertKind::Anomaly
                    && c.alert.tenant == tenant
                    && c.alert.team == team
            })
            .map(|c| c.alert.at)
            .max())
    }

    /// Claimed alerts without an outcome.
    pub async fn pending(&self) -> Result<Vec<Claimed>, Error> {
        let sent = self.ids("sent").await?;
        let failed = self.ids("failed").await?;
        Ok(self
            .claimed()
            .await?
            .into_iter()
            .filter(|c| !sent.contains(&c.alert.id) && !failed.contains(&c.alert.id))
            .collect())
    }

    /// The retry state of an email.
    pub async fn retry(&self, id: &str) -> Result<Option<Retry>, Error> {
        let path = self.path("retry", id);
        match self.storage.read(&path).await {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(state_err(&path)(e)),
        }
    }

    /// Records a failed attempt to be retried.
    pub async fn set_retry(&self, id: &str, r: &Retry) -> Result<(), Error> {
        let path = self.path("retry", id);
        let bytes = serde_json::to_vec(r).map_err(json_err(&path))?;
        self.storage
            .write(&path, bytes)
            .await
            .map_err(state_err(&path))
    }

    /// Takes the next delivery attempt of `id` (after `done` finished
    /// attempts): its number, or `None` when another evaluator holds an
    /// attempt younger than [`LEASE`] or took this one first.
    pub async fn take_attempt(&self, id: &str, done: u32) -> Result<Option<u32>, Error> {
        let prefix = format!("{}sending/{id}/", self.prefix);
        let leases = self
            .storage
            .list_files(&prefix)
            .await
            .map_err(state_err(&prefix))?;
        let taken = leases.len() as u32;
        if taken > done {
            // An attempt without an outcome: in progress, or its sender died.
            if let Some(newest) = leases.last() {
                let bytes = self.storage.read(newest).await.map_err(state_err(newest))?;
                let lease: Option<Lease> = serde_json::from_slice(&bytes).ok();
                let age = lease.map_or(chrono::Duration::MAX, |l| Utc::now() - l.at);
                if age.to_std().unwrap_or_default() < LEASE {
                    return Ok(None);
                }
            }
        }
        let next = taken + 1;
        let path = format!("{prefix}{next:06}.json");
        let lease = Lease {
            at: Utc::now(),
            by: format!("pid {}", std::process::id()),
        };
        let bytes = serde_json::to_vec(&lease).map_err(json_err(&path))?;
        Ok(self.create(&path, bytes).await?.then_some(next))
    }

    async fn outcome(&self, dir: &str, id: &str, detail: &str) -> Result<(), Error> {
        let path = self.path(dir, id);
        let o = Outcome {
            at: Utc::now(),
            detail: detail.to_string(),
        };
        self.create(&path, serde_json::to_vec(&o).map_err(json_err(&path))?)
            .await
            .map(|_| ())
    }

    /// Records a delivery.
    pub async fn mark_sent(&self, id: &str, detail: &str) -> Result<(), Error> {
        self.outcome("sent", id, detail).await
    }

    /// Records a permanent failure.
    pub async fn mark_failed(&self, id: &str, detail: &str) -> Result<(), Error> {
        self.outcome("failed", id, detail).await
    }

    /// Whether the alert's audit row is written.
    pub async fn is_audited(&self, id: &str) -> Result<bool, Error> {
        self.exists(&self.path("audited", id)).await
    }

    /// Records that the alert's audit row is written.
    pub async fn mark_audited(&self, id: &str) -> Result<(), Error> {
        self.create(&self.path("audited", id), b"{}".to_vec())
            .await
            .map(|_| ())
    }

    /// Moves the alert state of earlier versions (a local folder with
    /// `claimed/`, `sent/`, `failed/`, `audited/`) into the storage, so an
    /// alert claimed before the upgrade is not sent again, and renames the
    /// folder `<name>.imported`. Returns the claims moved.
    pub async fn import_dir(&self, dir: &std::path::Path) -> Result<usize, Error> {
        let io = |p: &std::path::Path, e: std::io::Error| Error::State {
            path: p.display().to_string(),
            message: e.to_string(),
        };
        let files = |sub: &str| -> Vec<std::path::PathBuf> {
            std::fs::read_dir(dir.join(sub))
                .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
                .unwrap_or_default()
        };
        let mut moved = 0;
        for p in files("claimed") {
            if p.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let bytes = std::fs::read(&p).map_err(|e| io(&p, e))?;
            let c: Claimed =
                serde_json::from_slice(&bytes).map_err(json_err(&p.display().to_string()))?;
            if self.claim(&c).await? {
                moved += 1;
            }
        }
        for outcome in ["sent", "failed"] {
            for p in files(outcome) {
                let Some(id) = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".json"))
                else {
                    continue;
                };
                let bytes = std::fs::read(&p).map_err(|e| io(&p, e))?;
                self.create(&self.path(outcome, id), bytes).await?;
            }
        }
        for p in files("audited") {
            if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
                self.mark_audited(name.strip_suffix(".json").unwrap_or(name))
                    .await?;
            }
        }
        let mut done = dir.as_os_str().to_owned();
        done.push(".imported");
        std::fs::rename(dir, &done).map_err(|e| io(dir, e))?;
        Ok(moved)
    }

    /// Brings state written by earlier versions in this same place (the
    /// local storage, whose root is the data directory) to this layout:
    /// claims get their content SHA-256, audit marks their `.json`, and the
    /// old lock and temporary files go. Returns the claims hashed.
    pub async fn upgrade_in_place(&self) -> Result<usize, Error> {
        let lock = format!("{}evaluator.lock", self.prefix);
        if !self.exists(&lock).await? {
            return Ok(0);
        }
        let all = self
            .storage
            .list_files(&self.prefix)
            .await
            .map_err(state_err(&self.prefix))?;
        let mut hashed = 0;
        for p in &all {
            let rest = p.strip_prefix(&self.prefix).unwrap_or(p);
            let (dir, name) = rest.split_once('/').unwrap_or(("", rest));
            match dir {
                "claimed" | "sent" | "failed" | "retry" if !name.ends_with(".json") => {
                    self.storage.delete(p).await.map_err(state_err(p))?;
                }
                "claimed" => {
                    let bytes = self.storage.read(p).await.map_err(state_err(p))?;
                    let mut c: Claimed = serde_json::from_slice(&bytes).map_err(json_err(p))?;
                    if c.content_sha256.is_empty() {
                        c.content_sha256 = c.content_hash()?;
                        let mut bytes = serde_json::to_vec_pretty(&c).map_err(json_err(p))?;
                        bytes.push(b'\n');
                        self.storage.write(p, bytes).await.map_err(state_err(p))?;
                        hashed += 1;
                    }
                }
                "audited" if !name.ends_with(".json") => {
                    self.mark_audited(name).await?;
                    self.storage.delete(p).await.map_err(state_err(p))?;
                }
                _ => {}
            }
        }
        self.storage.delete(&lock).await.map_err(state_err(&lock))?;
        Ok(hashed)
    }

    /// (claimed, sent, failed) counts.
    pub async fn counts(&self) -> Result<(usize, usize, usize), Error> {
        Ok((
            self.ids("claimed").await?.len(),
            self.ids("sent").await?.len(),
            self.ids("failed").await?.len(),
        ))
    }
}

/// Checks every claim under [`PREFIX`] for `tollgate verify`: each parses,
/// sits at the path its alert's id names, has the id its alert's key
/// gives, and the content SHA-256 it records; every outcome, retry and
/// audit mark belongs to a claim.
pub async fn verify(storage: &Storage, report: &mut VerifyReport) -> Result<(), Error> {
    let mut chain = DerivedChain {
        name: "alert claims".into(),
        ..DerivedChain::default()
    };
    let all = storage
        .list_files(PREFIX)
        .await
        .map_err(state_err(PREFIX))?;
    let mut claims = HashSet::new();
    for path in all.iter().filter(|p| p.starts_with("alerts/claimed/")) {
        let bytes = storage.read(path).await.map_err(state_err(path))?;
        chain.links += 1;
        chain.bytes += bytes.len() as u64;
        let c: Claimed = match serde_json::from_slice(&bytes) {
            Ok(c) => c,
            Err(e) => {
                report.problems.push(Problem::new(
                    "bad_alert_claim",
                    path,
                    format!("is not an alert claim: {e}"),
                ));
                continue;
            }
        };
        claims.insert(c.alert.id.clone());
        let expected = crate::evaluate::id_of(&c.alert);
        if format!("alerts/claimed/{}.json", c.alert.id) != *path || c.alert.id != expected {
            report.problems.push(Problem::new(
                "misplaced_alert_claim",
                path,
                format!(
                    "holds alert {} whose key gives id {expected}: its alert was edited or moved",
                    c.alert.id
                ),
            ));
            continue;
        }
        match c.content_hash() {
            Ok(h) if h == c.content_sha256 => chain.files += 1,
            Ok(h) => report.problems.push(Problem::new(
                "alert_claim_hash_mismatch",
                path,
                format!(
                    "its content's SHA-256 is {h} but it records {:?}: it was edited",
                    c.content_sha256
                ),
            )),
            Err(e) => return Err(e),
        }
    }
    for path in &all {
        let Some(rest) = path.strip_prefix(PREFIX) else {
            continue;
        };
        let (dir, name) = rest.split_once('/').unwrap_or(("", rest));
        let id = match dir {
            "sent" | "failed" | "retry" | "audited" => name.strip_suffix(".json"),
            "sending" => name.split('/').next(),
            "claimed" | "anomaly" => continue,
            _ => None,
        };
        match id {
            Some(id) if claims.contains(id) => {}
            Some(_) => report.problems.push(Problem::new(
                "orphan_alert_state",
                path,
                "belongs to no alert claim: the claim was deleted, or this was put here",
            )),
            None => report.problems.push(Problem::new(
                "stray_alert_object",
                path,
                "is not alert state (alerts/claimed|sent|failed|retry|audited|sending|anomaly/...)",
            )),
        }
    }
    report.derived.push(chain);
    Ok(())
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;

    fn alert(team: &str) -> Alert {
        let mut a = Alert {
            id: String::new(),
            kind: AlertKind::QuotaWarning,
            tenant: "acme".into(),
            team: team.into(),
            month: "2026-11".into(),
            at: "2026-11-20T00:00:00Z".parse().unwrap(),
            currency: "USD".into(),
            spent: Decimal::new(900, 0),
            quota: Decimal::new(1000, 0),
            burn_pct: Decimal::new(90, 0),
            forecast: Decimal::new(1300, 0),
            day_cost: None,
            baseline_daily: None,
            ratio: None,
            drivers: Vec::new(),
            to: vec![format!("lead.{team}@acme.example")],
            cc: Vec::new(),
        };
        a.id = crate::evaluate::id_of(&a);
        a
    }

    fn claimed(team: &str) -> Claimed {
        let alert = alert(team);
        Claimed {
            from: "tollgate@acme.example".into(),
            recipients: alert.to.clone(),
            message: Some("Subject: quota\r\n\r\nbody\r\n".into()),
            claimed_at: Utc::now(),
            alert,
            content_sha256: String::new(),
        }
    }

    async fn problems(dir: &std::path::Path) -> Vec<(String, String)> {
        let storage = Storage::open(&StorageConfig::local(dir), "verify").unwrap();
        let mut report = VerifyReport::default();
        verify(&storage, &mut report).await.unwrap();
        report
            .problems
            .iter()
            .map(|p| (p.kind.to_string(), p.path.clone()))
            .collect()
    }

    #[tokio::test]
    async fn claims_and_attempts_are_taken_once_and_tampering_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StorageConfig::local(dir.path());
        let (one, two) = (
            AlertStore::open(&cfg, PREFIX).unwrap(),
            AlertStore::open(&cfg, PREFIX).unwrap(),
        );
        let (c, d) = (claimed("search"), claimed("vision"));
        assert!(one.claim(&c).await.unwrap());
        assert!(!two.claim(&c).await.unwrap(), "claimed once, by anyone");
        assert!(two.claim(&d).await.unwrap());
        assert_eq!(two.pending().await.unwrap().len(), 2);

        // One delivery attempt, whoever asks.
        assert_eq!(one.take_attempt(&c.alert.id, 0).await.unwrap(), Some(1));
        assert_eq!(two.take_attempt(&c.alert.id, 0).await.unwrap(), None);
        // After a failed attempt 1, attempt 2 is for one of them.
        let retry = Retry {
            attempts: 1,
            next_at: Utc::now(),
            last_error: "421".into(),
        };
        two.set_retry(&c.alert.id, &retry).await.unwrap();
        assert_eq!(two.take_attempt(&c.alert.id, 1).await.unwrap(), Some(2));
        assert_eq!(one.take_attempt(&c.alert.id, 1).await.unwrap(), None);
        one.mark_sent(&c.alert.id, "250 ok").await.unwrap();
        one.mark_audited(&c.alert.id).await.unwrap();
        assert_eq!(one.pending().await.unwrap().len(), 1);
        assert!(problems(dir.path()).await.is_empty());

        // The anomaly window: one per team per window, whoever asks.
        let mut anomaly = alert("search");
        anomaly.kind = AlertKind::Anomaly;
        let day = std::time::Duration::from_secs(86_400);
        assert!(one.take_anomaly_window(&anomaly, day).await.unwrap());
        anomaly.at += chrono::Duration::hours(1);
        assert!(!two.take_anomaly_window(&anomaly, day).await.unwrap());

        // Edited: another recipient.
        let path = dir
            .path()
            .join(format!("alerts/claimed/{}.json", d.alert.id));
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("lead.vision@", "mallory@")).unwrap();
        let p = problems(dir.path()).await;
        let rel = format!("alerts/claimed/{}.json", d.alert.id);
        assert!(
            p.contains(&("alert_claim_hash_mismatch".into(), rel.clone())),
            "{p:?}"
        );
        // Its alert edited (another team): the id no longer matches.
        std::fs::write(
            &path,
            text.replace("\"team\": \"vision\"", "\"team\": \"search\""),
        )
        .unwrap();
        let p = problems(dir.path()).await;
        assert!(
            p.contains(&("misplaced_alert_claim".into(), rel.clone())),
            "{p:?}"
        );
        std::fs::write(&path, &text).unwrap();
        assert!(problems(dir.path()).await.is_empty());

        // Deleted: what it left is named.
        std::fs::remove_file(
            dir.path()
                .join(format!("alerts/claimed/{}.json", c.alert.id)),
        )
        .unwrap();
        let p = problems(dir.path()).await;
        for state in ["sent", "audited", "retry"] {
            let orphan = format!("alerts/{state}/{}.json", c.alert.id);
            assert!(p.contains(&("orphan_alert_state".into(), orphan)), "{p:?}");
        }
        // Inserted: a stray object.
        std::fs::write(dir.path().join("alerts/notes.txt"), "x").unwrap();
        let p = problems(dir.path()).await;
        assert!(
            p.contains(&("stray_alert_object".into(), "alerts/notes.txt".into())),
            "{p:?}"
        );
    }

    #[tokio::test]
    async fn state_of_earlier_versions_is_upgraded_or_moved_in() {
        // The old layout, as the local storage held it.
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("alerts");
        for sub in ["claimed", "sent", "audited"] {
            std::fs::create_dir_all(old.join(sub)).unwrap();
        }
        let c = claimed("search");
        let id = c.alert.id.clone();
        let mut v = serde_json::to_value(&c).unwrap();
        v.as_object_mut().unwrap().remove("content_sha256");
        std::fs::write(old.join(format!("claimed/{id}.json")), v.to_string()).unwrap();
        std::fs::write(old.join("claimed/x.json.tmp4242"), "{").unwrap();
        std::fs::write(
            old.join(format!("sent/{id}.json")),
            r#"{"at":"2026-11-20T00:00:00Z","detail":"250"}"#,
        )
        .unwrap();
        std::fs::write(old.join(format!("audited/{id}")), "").unwrap();
        std::fs::write(old.join("evaluator.lock"), "").unwrap();

        // In place (local storage): verify passes afterwards, nothing pending.
        let here = AlertStore::open(&StorageConfig::local(dir.path()), PREFIX).unwrap();
        assert_eq!(here.upgrade_in_place().await.unwrap(), 1);
        assert!(
            problems(dir.path()).await.is_empty(),
            "{:?}",
            problems(dir.path()).await
        );
        assert!(here.pending().await.unwrap().is_empty());
        assert!(here.is_audited(&id).await.unwrap());
        assert!(!here.claim(&c).await.unwrap(), "still claimed");

        // Moved into another storage (an object store in production).
        let other = tempfile::tempdir().unwrap();
        let there = AlertStore::open(&StorageConfig::local(other.path()), PREFIX).unwrap();
        assert_eq!(there.import_dir(&old).await.unwrap(), 1);
        assert!(!old.exists());
        assert!(
            !there.claim(&c).await.unwrap(),
            "claimed before the upgrade: not sent again"
        );
        assert!(there.pending().await.unwrap().is_empty());
        assert!(
            problems(other.path()).await.is_empty(),
            "{:?}",
            problems(other.path()).await
        );
    }
}
