//! Who is asking: a principal's organisation, team and roles, what each role
//! may do, and the rows it may read (its [`Scope`]).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A role a token or API key grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads its team's reports.
    Viewer,
    /// Reads its team's reports and runs SQL over its team's rows.
    Contributor,
    /// As contributor; owns the team (manages its service accounts).
    Owner,
    /// Reads every team of its organisation, runs SQL, verifies the log.
    Admin,
    /// Reads every team's reports and SQL of its organisation (chargeback).
    Finance,
    /// Reads every team of its organisation, the audit tables and `verify`.
    Auditor,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 6] = [
        Role::Viewer,
        Role::Contributor,
        Role::Owner,
        Role::Admin,
        Role::Finance,
        Role::Auditor,
    ];

    /// The role's name in tokens and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Contributor => "contributor",
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Finance => "finance",
            Role::Auditor => "auditor",
        }
    }

    /// Whether the role reads every team of its organisation.
    pub fn org_wide(self) -> bool {
        matches!(self, Role::Admin | Role::Finance | Role::Auditor)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?} (one of viewer, contributor, owner, admin, finance, auditor)")
            })
    }
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// The reports (chargeback, spend, quota, anomalies, tool latency).
    Reports,
    /// Ad-hoc SQL.
    Sql,
    /// The integrity verification of the log.
    Verify,
}

impl Permission {
    /// Its name in errors and the OpenAPI document.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Reports => "reports",
            Permission::Sql => "sql",
            Permission::Verify => "verify",
        }
    }

    /// The roles that hold it.
    pub fn roles(self) -> &'static [Role] {
        match self {
            Permission::Reports => &Role::ALL,
            Permission::Sql => &[
                Role::Contributor,
                Role::Owner,
                Role::Admin,
                Role::Finance,
                Role::Auditor,
            ],
            Permission::Verify => &[Role::Admin, Role::Auditor],
        }
    }
}

/// How the principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// A JWT bearer token.
    Jwt,
    /// A service account's API key.
    ApiKey,
    /// The operator of the machine (`tollgate report` without `--token`).
    Local,
}

impl Credential {
    /// Its name in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Credential::Jwt => "jwt",
            Credential::ApiKey => "api_key",
            Credential::Local => "local",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// Subject: the user (`sub`) or the API key's id.
    pub subject: String,
    /// Organisation (tenant).
    pub org: String,
    /// Team, for team roles.
    pub team: Option<String>,
    /// Roles.
    pub roles: BTreeSet<Role>,
    /// How it authenticated.
    pub credential: Credential,
}

/// A request the principal may not make: the reason, for a 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden(pub String);

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Principal {
    /// Checks a principal's claims: an organisation, at least one role, and
    /// a team for team roles.
    pub fn new(
        subject: String,
        org: String,
        team: Option<String>,
        roles: BTreeSet<Role>,
        credential: Credential,
    ) -> Result<Self, String> {
        if org.trim().is_empty() {
            return Err("no organisation (claim `org`)".into());
        }
        if roles.is_empty() {
            return Err("no roles (claim `roles`)".into());
        }
        let team = team.filter(|t| !t.trim().is_empty());
        if team.is_none() && roles.iter().any(|r| !r.org_wide()) {
            return Err(
                "team roles (viewer, contributor, owner) need a team (claim `team`)".into(),
            );
        }
        Ok(Self {
            subject,
            org,
            team,
            roles,
            credential,
        })
    }

    /// Allowed when one of its roles holds `p`; else the reason.
    pub fn require(&self, p: Permission) -> Result<(), Forbidden> {
        if self.roles.iter().any(|r| p.roles().contains(r)) {
            return Ok(());
        }
        let roles: Vec<&str> = self.roles.iter().map(|r| r.as_str()).collect();
        let needed: Vec<&str> = p.roles().iter().map(|r| r.as_str()).collect();
        Err(Forbidden(format!(
            "{} needs one of the roles {}; {} has {}",
            p.as_str(),
            needed.join(", "),
            self.subject,
            roles.join(", ")
        )))
    }

    /// Whether it reads every team of its organisation.
    pub fn org_wide(&self) -> bool {
        self.roles.iter().any(|r| r.org_wide())
    }

    /// The rows it may read, given the organisation-shared teams.
    pub fn scope(&self, shared_teams: &[String]) -> Scope {
        Scope {
            org: self.org.clone(),
            teams: if self.org_wide() {
                None
            } else {
                let mut t: BTreeSet<String> = shared_teams.iter().cloned().collect();
                t.extend(self.team.clone());
                Some(t)
            },
        }
    }

    /// `roles` as a comma-separated list.
    pub fn roles_text(&self) -> String {
        let r: Vec<&str> = self.roles.iter().map(|r| r.as_str()).collect();
        r.join(",")
    }
}

/// The rows a principal may read: its organisation's, and of those only the
/// listed teams' unless `teams` is `None` (organisation-wide).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Organisation (the `tenant` column).
    pub org: String,
    /// Teams (the `team` column): its own and the organisation-shared ones;
    /// `None` for every team of the organisation.
    pub teams: Option<BTreeSet<String>>,
}

impl Scope {
    /// Whether a row of `tenant`, `team` is in scope (for documents that
    /// are not tables, such as frozen statements and the teams directory).
    pub fn allows(&self, tenant: &str, team: &str) -> bool {
        tenant == self.org && self.teams.as_ref().is_none_or(|t| t.contains(team))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(team: Option<&str>, roles: &[Role]) -> Result<Principal, String> {
        Principal::new(
            "u".into(),
            "acme".into(),
            team.map(String::from),
            roles.iter().copied().collect(),
            Credential::Jwt,
        )
    }

    #[test]
    fn team_roles_need_a_team_and_scope_to_it() {
        assert!(p(None, &[Role::Viewer])
            .unwrap_err()
            .contains("need a team"));
        let v = p(Some("search"), &[Role::Viewer]).unwrap();
        assert!(v.require(Permission::Reports).is_ok());
        let e = v.require(Permission::Sql).unwrap_err();
        assert!(e.0.contains("sql needs one of the roles"), "{e}");
        let s = v.scope(&["shared".into()]);
        assert!(s.allows("acme", "search"));
        assert!(s.allows("acme", "shared"));
        assert!(!s.allows("acme", "vision"));
        assert!(!s.allows("globex", "search"));
    }

    #[test]
    fn org_roles_read_their_org_only() {
        let f = p(None, &[Role::Finance]).unwrap();
        let s = f.scope(&[]);
        assert!(s.allows("acme", "anything"));
        assert!(!s.allows("globex", "anything"));
        assert!(f.require(Permission::Verify).is_err());
        assert!(p(None, &[Role::Auditor])
            .unwrap()
            .require(Permission::Verify)
            .is_ok());
        assert!("root".parse::<Role>().unwrap_err().contains("unknown role"));
    }
}
