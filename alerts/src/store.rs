//! The alert state in `<data_dir>/alerts/`, durable across restarts and
//! crashes:
//!
//! - `claimed/<id>.json`: the alert and its rendered email, created at most
//!   once (written to a temporary file, then hard-linked into place, which
//!   fails if it exists): an alert raised again, by this process after a
//!   restart or by another, finds it and sends nothing.
//! - `sent/<id>.json`, `failed/<id>.json`: the outcome; an email with
//!   neither is pending.
//! - `retry/<id>.json`: attempts so far and when to try next.
//! - `audited/<id>`: its row is in the `alerts` table.
//! - `evaluator.lock`: held during a cycle, so that two evaluators (the one
//!   inside `tollgate run` and `tollgate alerts run`) take turns.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Alert, AlertKind, Error};

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

/// The state directory.
#[derive(Debug, Clone)]
pub struct AlertStore {
    root: PathBuf,
}

fn io(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::State {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| io(&tmp, e))?;
    f.sync_all().map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

const DIRS: [&str; 5] = ["claimed", "sent", "failed", "retry", "audited"];

impl AlertStore {
    /// Opens (creating) the state under `dir`.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        for d in DIRS {
            let p = dir.join(d);
            std::fs::create_dir_all(&p).map_err(|e| io(&p, e))?;
        }
        Ok(Self {
            root: dir.to_path_buf(),
        })
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Holds the evaluator lock until the file is dropped.
    pub fn lock(&self) -> Result<File, Error> {
        let p = self.root.join("evaluator.lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| io(&p, e))?;
        f.lock().map_err(|e| io(&p, e))?;
        Ok(f)
    }

    fn file(&self, dir: &str, id: &str, ext: &str) -> PathBuf {
        self.root.join(dir).join(format!("{id}{ext}"))
    }

    /// Whether the alert was claimed already.
    pub fn is_claimed(&self, id: &str) -> bool {
        self.file("claimed", id, ".json").exists()
    }

    /// Claims an alert: `false` if it was claimed before.
    pub fn claim(&self, c: &Claimed) -> Result<bool, Error> {
        let path = self.file("claimed", &c.alert.id, ".json");
        if path.exists() {
            return Ok(false);
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(c).map_err(|e| io(&path, e))?;
        {
            let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
            f.write_all(&bytes).map_err(|e| io(&tmp, e))?;
            f.sync_all().map_err(|e| io(&tmp, e))?;
        }
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                if let Ok(d) = File::open(self.root.join("claimed")) {
                    let _ = d.sync_all();
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io(&path, e)),
        }
    }

    /// Every claimed alert, oldest first.
    pub fn claimed(&self) -> Result<Vec<Claimed>, Error> {
        let dir = self.root.join("claimed");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let p = entry.map_err(|e| io(&dir, e))?.path();
            if p.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let bytes = std::fs::read(&p).map_err(|e| io(&p, e))?;
            out.push(serde_json::from_slice::<Claimed>(&bytes).map_err(|e| io(&p, e))?);
        }
        out.sort_by(|a, b| {
            a.claimed_at
                .cmp(&b.claimed_at)
                .then(a.alert.id.cmp(&b.alert.id))
        });
        Ok(out)
    }

    /// The latest anomaly alert claimed for a team.
    pub fn last_anomaly(&self, tenant: &str, team: &str) -> Result<Option<DateTime<Utc>>, Error> {
        Ok(self
            .claimed()?
            .iter()
            .filter(|c| {
                c.alert.kind == AlertKind::Anomaly
                    && c.alert.tenant == tenant
                    && c.alert.team == team
            })
            .map(|c| c.alert.at)
            .max())
    }

    /// Whether an email is sent or failed for good.
    pub fn is_done(&self, id: &str) -> bool {
        self.file("sent", id, ".json").exists() || self.file("failed", id, ".json").exists()
    }

    /// Claimed alerts without an outcome.
    pub fn pending(&self) -> Result<Vec<Claimed>, Error> {
        Ok(self
            .claimed()?
            .into_iter()
            .filter(|c| !self.is_done(&c.alert.id))
            .collect())
    }

    /// The retry state of an email.
    pub fn retry(&self, id: &str) -> Option<Retry> {
        let bytes = std::fs::read(self.file("retry", id, ".json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Records a failed attempt to be retried.
    pub fn set_retry(&self, id: &str, r: &Retry) -> Result<(), Error> {
        let p = self.file("retry", id, ".json");
        write_atomic(&p, &serde_json::to_vec(r).map_err(|e| io(&p, e))?)
    }

    fn outcome(&self, dir: &str, id: &str, detail: &str) -> Result<(), Error> {
        let p = self.file(dir, id, ".json");
        let o = Outcome {
            at: Utc::now(),
            detail: detail.to_string(),
        };
        write_atomic(&p, &serde_json::to_vec(&o).map_err(|e| io(&p, e))?)
    }

    /// Records a delivery.
    pub fn mark_sent(&self, id: &str, detail: &str) -> Result<(), Error> {
        self.outcome("sent", id, detail)
    }

    /// Records a permanent failure.
    pub fn mark_failed(&self, id: &str, detail: &str) -> Result<(), Error> {
        self.outcome("failed", id, detail)
    }

    /// Whether the alert's audit row is written.
    pub fn is_audited(&self, id: &str) -> bool {
        self.file("audited", id, "").exists()
    }

    /// Records that the alert's audit row is written.
    pub fn mark_audited(&self, id: &str) -> Result<(), Error> {
        write_atomic(&self.file("audited", id, ""), b"")
    }

    /// (claimed, sent, failed) counts.
    pub fn counts(&self) -> Result<(usize, usize, usize), Error> {
        let n = |d: &str| -> Result<usize, Error> {
            let p = self.root.join(d);
            Ok(std::fs::read_dir(&p)
                .map_err(|e| io(&p, e))?
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().and_then(|x| x.to_str()) == Some("json"))
                .count())
        };
        Ok((n("claimed")?, n("sent")?, n("failed")?))
    }
}
