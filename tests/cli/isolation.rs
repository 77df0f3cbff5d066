//! The isolation suite: the automated form of a quarterly access audit of
//! `tollgate serve` and `tollgate sql`. Two organisations x three teams x
//! every role (JWTs signed RS256, and an API key) x every data endpoint in
//! /openapi.json and every SQL shape; no row of another organisation (or,
//! for team roles, another team) may come back, forbidden calls get 401 or
//! 403 with a reason, downloads equal the ledger's report, and every
//! request is in the query audit with its principal.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::pipeline::free_port;
use super::{audit_files, batches, text, tollgate, walk};

const ORGS: [(&str, [&str; 3]); 2] = [
    ("acme", ["ml-research", "search", "support-bots"]),
    ("globex", ["vision", "data-platform", "team-06"]),
];
const ROLES: [&str; 6] = [
    "viewer",
    "contributor",
    "owner",
    "admin",
    "finance",
    "auditor",
];

fn support(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support/jwt")
        .join(name)
}

fn jwt(key: &str, alg: Algorithm, claims: &Value) -> String {
    let pem = std::fs::read(support(key)).unwrap();
    let k = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(&pem),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    };
    let mut h = Header::new(alg);
    if key == "issuer.key.pem" {
        h.kid = Some("tollgate-test-1".into());
    }
    encode(&h, claims, &k).unwrap()
}

fn claims(sub: &str, org: &str, team: Option<&str>, roles: &[&str], exp: i64) -> Value {
    json!({"sub": sub, "org": org, "team": team, "roles": roles, "exp": exp})
}

/// A principal of the suite.
#[derive(Clone, Debug)]
struct Who {
    subject: String,
    org: &'static str,
    team: Option<&'static str>,
    role: &'static str,
    token: String,
}

impl Who {
    fn sees(&self, tenant: &str, team: &str) -> bool {
        tenant == self.org && self.team.is_none_or(|t| t == team)
    }
}

struct Server(Child);

/// `tollgate serve` in `dir` on a free loopback port, with `env` set, once
/// it accepts connections.
fn serve(dir: &Path, env: &[(&str, &str)]) -> (Server, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["serve", "--listen", &addr])
            .current_dir(dir)
            .env_remove("TOLLGATE_CONFIG")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "tollgate serve did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, addr)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One request: status, lower-cased head, body bytes.
pub(super) fn call(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = text(&raw[..split]).to_lowercase();
    let body = raw.get(split + 4..).unwrap_or_default().to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head, body)
}

/// Every (tenant, team) pair named anywhere in a JSON answer (team empty
/// when the object has none).
fn tenants_in(v: &Value, out: &mut BTreeSet<(String, String)>) {
    match v {
        Value::Object(m) => {
            if let Some(t) = m.get("tenant").and_then(Value::as_str) {
                let team = m
                    .get("team")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                out.insert((t.to_string(), team));
            }
            m.values().for_each(|x| tenants_in(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| tenants_in(x, out)),
        _ => {}
    }
}

/// Checks that a JSON answer holds only rows `who` may see and no other
/// organisation's name as a value.
fn assert_no_leak(who: &Who, what: &str, body: &[u8]) -> usize {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{what} as {who:?}: not JSON ({e}): {}", text(body)));
    let mut seen = BTreeSet::new();
    tenants_in(&v, &mut seen);
    for (tenant, team) in &seen {
        let ok = if team.is_empty() {
            tenant == who.org
        } else {
            who.sees(tenant, team)
        };
        assert!(
            ok,
            "LEAK: {what} as {} ({}) returned a row of {tenant}/{team}",
            who.subject, who.role
        );
    }
    let other = ORGS
        .iter()
        .map(|(o, _)| *o)
        .find(|o| *o != who.org)
        .unwrap();
    assert!(
        !text(body).contains(&format!("\"{other}\"")),
        "LEAK: {what} as {} mentions {other}",
        who.subject
    );
    seen.len()
}

/// A string column's values.
fn strings(b: &arrow::array::RecordBatch, name: &str) -> Vec<Option<String>> {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .unwrap()
        .iter()
        .map(|v| v.map(String::from))
        .collect()
}

/// Rows per (tenant, team) of a table, read from its Parquet files directly.
fn truth(data: &Path, table: &str) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for f in walk(&data.join("tables").join(table)) {
        if f.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        for b in batches(&f) {
            for (tenant, team) in strings(&b, "tenant").into_iter().zip(strings(&b, "team")) {
                *out.entry((tenant.unwrap(), team.unwrap())).or_default() += 1;
            }
        }
    }
    out
}

/// The SQL shapes of the suite: (name, SQL). `{other_id}` is an event id of
/// the other organisation.
const SHAPES: &[(&str, &str)] = &[
    ("list", "SELECT tenant, team, event_id, tool, status FROM tool_calls ORDER BY time LIMIT 200"),
    ("get by id", "SELECT tenant, team, event_id FROM events WHERE event_id = '{other_id}'"),
    ("aggregate", "SELECT tenant, team, COUNT(*) AS n, SUM(gpu_millis) AS ms FROM gpu_usage GROUP BY tenant, team"),
    ("join", "SELECT c.tenant, c.team, COUNT(*) AS n FROM tool_calls c JOIN events e ON c.event_id = e.event_id GROUP BY c.tenant, c.team"),
    ("cross join", "SELECT a.tenant, b.team FROM (SELECT DISTINCT tenant FROM gpu_usage) a CROSS JOIN (SELECT DISTINCT tenant, team FROM tool_calls) b"),
    ("subquery in", "SELECT tenant, team, event_id FROM tool_calls WHERE event_id IN (SELECT event_id FROM events WHERE tenant <> 'nobody') LIMIT 100"),
    ("exists", "SELECT DISTINCT tenant, team FROM gpu_usage g WHERE EXISTS (SELECT 1 FROM tool_calls c WHERE c.team <> g.team)"),
    ("scalar subquery", "SELECT (SELECT COUNT(*) FROM events) AS n"),
    ("cte", "WITH t AS (SELECT tenant, team, cost FROM costed_usage) SELECT tenant, team, SUM(cost) AS cost FROM t GROUP BY tenant, team"),
    ("union", "SELECT tenant, team FROM tool_calls UNION SELECT tenant, team FROM gpu_usage UNION ALL SELECT tenant, team FROM alerts"),
    ("window", "SELECT tenant, team, ROW_NUMBER() OVER (PARTITION BY tenant ORDER BY time) AS n, COUNT(*) OVER () AS total FROM events LIMIT 300"),
    ("views", "SELECT tenant, team, SUM(cost) AS cost FROM daily_spend GROUP BY tenant, team"),
    ("latency view", "SELECT tenant, tool, calls FROM tool_latency"),
    ("audit log", "SELECT tenant, team, subject, endpoint FROM query_log"),
    ("alerts", "SELECT tenant, team, kind FROM alerts"),
    ("price book", "SELECT gpu_model, pricing_tier FROM gpu_rates"),
];

/// Statements and sources nobody may use: 403 for everyone.
const REFUSED: &[&str] = &[
    "SELECT * FROM information_schema.tables",
    "SELECT table_name, column_name FROM information_schema.columns",
    "SHOW TABLES",
    "SHOW COLUMNS FROM events",
    "SELECT * FROM read_parquet('/etc/passwd')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM 'file:///etc/hosts'",
    "SELECT * FROM generate_series(1, 3)",
    "COPY (SELECT * FROM events) TO '/tmp/leak.parquet'",
    "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/'",
    "CREATE TABLE x AS SELECT * FROM events",
    "CREATE VIEW everything AS SELECT * FROM events",
    "INSERT INTO events SELECT * FROM events",
    "DELETE FROM events",
    "DROP VIEW costed_usage",
    "SET datafusion.execution.batch_size = 1",
    "EXPLAIN SELECT * FROM events",
    "SELECT * FROM datafusion.information_schema.df_settings",
];

#[test]
fn isolation_suite_two_orgs_three_teams_every_role_endpoint_and_sql_shape() {
    let dir = tempfile::tempdir().unwrap();
    let out = tollgate(
        dir.path(),
        &[
            "demo",
            "--start",
            "2026-10-01",
            "--days",
            "28",
            "--teams",
            "6",
            "--seed",
            "11",
            "--events-per-day",
            "600",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let data = dir.path().join("tollgate-data");
    let demo_cfg = std::fs::read_to_string(data.join("demo/tollgate.demo.toml")).unwrap();
    let cfg = format!(
        "{demo_cfg}\n[server.auth]\njwt_keys = [{:?}, {:?}]\n",
        support("issuer.pub.pem"),
        support("jwks.json")
    );
    std::fs::write(dir.path().join("tollgate.toml"), cfg).unwrap();

    // The principals: every role in every team of both organisations
    // (organisation roles once per organisation), and an API key.
    let exp = chrono::Utc::now().timestamp() + 3600;
    let mut people = Vec::new();
    for (org, teams) in ORGS {
        for role in ROLES {
            let org_wide = matches!(role, "admin" | "finance" | "auditor");
            let team_list: Vec<Option<&'static str>> = if org_wide {
                vec![None]
            } else {
                teams.iter().map(|t| Some(*t)).collect()
            };
            for team in team_list {
                let subject = format!("{role}@{org}/{}", team.unwrap_or("*"));
                let token = jwt(
                    "issuer.key.pem",
                    Algorithm::RS256,
                    &claims(&subject, org, team, &[role], exp),
                );
                people.push(Who {
                    subject,
                    org,
                    team,
                    role,
                    token,
                });
            }
        }
    }
    let created = tollgate(
        dir.path(),
        &[
            "apikey",
            "create",
            "--name",
            "ci",
            "--org",
            "globex",
            "--team",
            "vision",
            "--role",
            "contributor",
        ],
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let api_key = text(&created.stdout).trim().to_string();
    assert!(api_key.starts_with("tgk_"));
    let key_id = api_key.split('_').nth(1).unwrap().to_string();
    let stored =
        std::fs::read_to_string(data.join(format!("auth/api_keys/{key_id}/000001.json"))).unwrap();
    assert!(stored.contains(&key_id), "{stored}");
    assert!(!stored.contains(&api_key), "the key is stored in clear");
    people.push(Who {
        subject: format!("apikey:{key_id}"),
        org: "globex",
        team: Some("vision"),
        role: "contributor",
        token: api_key.clone(),
    });
    assert_eq!(people.len(), 2 * (3 * 3 + 3) + 1);

    let (_server, addr) = serve(dir.path(), &[]);
    assert_eq!(call(&addr, "GET", "/healthz", None, b"").0, 200);
    let (s, _, body) = call(&addr, "GET", "/readyz", None, b"");
    assert_eq!(s, 200, "{}", text(&body));

    // Requests whose audit entry must appear: (sha256 of the text, subject, outcome).
    let mut sent: Vec<(String, String, String)> = Vec::new();
    let sha = |t: &str| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(t.as_bytes()))
    };

    // Every data endpoint of the OpenAPI document, for every principal.
    let (s, _, body) = call(&addr, "GET", "/openapi.json", None, b"");
    assert_eq!(s, 200);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let params: BTreeMap<&str, &str> = [
        ("/v1/reports/chargeback", "month=2026-10"),
        ("/v1/reports/spend", "from=2026-10-01&to=2026-11-01&by=user"),
        ("/v1/reports/quota", "at=2026-10-28T00:00:00Z"),
        ("/v1/reports/anomalies", "at=2026-10-20T00:00:00Z"),
        ("/v1/reports/tool-latency", "from=2026-10-01&to=2026-11-01"),
        ("/v1/tables", ""),
        ("/v1/whoami", ""),
        ("/v1/verify", ""),
    ]
    .into_iter()
    .collect();
    let mut saw_rows: BTreeMap<String, usize> = BTreeMap::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let Some(perm) = op["x-tollgate-permission"].as_str() else {
                assert!(
                    ["/openapi.json", "/healthz", "/readyz", "/metrics"].contains(&path.as_str()),
                    "{path} has no permission"
                );
                continue;
            };
            let allowed: Vec<&str> = op["x-tollgate-roles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            if path == "/v1/sql" || path == "/v1/admission" {
                continue; // below, shape by shape and team by team
            }
            let q = params.get(path.as_str()).unwrap_or_else(|| {
                panic!("{method} {path} is not in the isolation suite: add its parameters here")
            });
            let url = if q.is_empty() {
                path.clone()
            } else {
                format!("{path}?{q}")
            };
            // The audit keeps the parameters sorted.
            let mut sorted: Vec<&str> = q.split('&').filter(|p| !p.is_empty()).collect();
            sorted.sort();
            let q = &sorted.join("&");
            // Without credentials, and with bad ones: 401 with a reason.
            let (s, head, body) = call(&addr, &method.to_uppercase(), &url, None, b"");
            assert_eq!(s, 401, "{path} without a token: {}", text(&body));
            assert!(head.contains("www-authenticate: bearer"));
            assert!(text(&body).contains("no credentials"), "{}", text(&body));
            sent.push((sha(q), String::new(), "unauthenticated".into()));
            let answers = two_at_a_time(&people, |who| {
                let (s, _, body) = call(&addr, &method.to_uppercase(), &url, Some(&who.token), b"");
                let entry = (
                    sha(q),
                    who.subject.clone(),
                    if allowed.contains(&who.role) {
                        "ok"
                    } else {
                        "forbidden"
                    }
                    .to_string(),
                );
                if !allowed.contains(&who.role) {
                    assert_eq!(
                        s,
                        403,
                        "{path} as {} ({perm}): {}",
                        who.subject,
                        text(&body)
                    );
                    assert!(
                        text(&body).contains(&format!("{perm} needs one of the roles")),
                        "{}",
                        text(&body)
                    );
                    return (entry, 0);
                }
                assert_eq!(s, 200, "{path} as {}: {}", who.subject, text(&body));
                (entry, assert_no_leak(who, path, &body))
            });
            for (entry, n) in answers {
                sent.push(entry);
                *saw_rows.entry(path.clone()).or_default() += n;
            }
        }
    }
    // The reports did return rows (the suite would pass vacuously otherwise).
    for p in [
        "/v1/reports/chargeback",
        "/v1/reports/spend",
        "/v1/reports/quota",
        "/v1/reports/tool-latency",
    ] {
        assert!(
            saw_rows.get(p).copied().unwrap_or(0) > 0,
            "{p} returned no rows to anyone"
        );
    }

    // Admission decisions: every principal asks about every team of both
    // organisations; its own teams are answered (with its quota line only),
    // every other team is refused, whether it exists or not.
    let anonymous = r#"{"team": "vision"}"#;
    let (s, _, body) = call(&addr, "POST", "/v1/admission", None, anonymous.as_bytes());
    assert_eq!(s, 401, "{}", text(&body));
    sent.push((sha(anonymous), String::new(), "unauthenticated".into()));
    let mut decisions = 0;
    for who in &people {
        for (org, teams) in ORGS {
            for team in teams.iter().chain(&["no-such-team"]) {
                let mine = org == who.org && who.team.is_none_or(|t| t == *team);
                let body =
                    json!({"team": team, "tenant": org, "at": "2026-10-28T00:00:00Z"}).to_string();
                let (s, _, resp) = call(
                    &addr,
                    "POST",
                    "/v1/admission",
                    Some(&who.token),
                    body.as_bytes(),
                );
                sent.push((
                    sha(&body),
                    who.subject.clone(),
                    if mine { "ok" } else { "refused" }.into(),
                ));
                if !mine {
                    assert_eq!(s, 403, "{org}/{team} as {}: {}", who.subject, text(&resp));
                    assert!(
                        text(&resp).contains("not among the teams this principal may see"),
                        "{}",
                        text(&resp)
                    );
                } else if *team == "no-such-team" {
                    // An organisation role asking about a team outside the
                    // directory: no quota, allowed (as the alerts API says).
                    assert_eq!(s, 200, "{team} as {}: {}", who.subject, text(&resp));
                    assert!(text(&resp).contains("\"allow\": true"), "{}", text(&resp));
                } else {
                    assert_eq!(s, 200, "{team} as {}: {}", who.subject, text(&resp));
                    let v: Value = serde_json::from_slice(&resp).unwrap();
                    assert_eq!(v["quota"]["team"], *team, "{v}");
                    assert!(v["allow"].is_boolean(), "{v}");
                    assert_no_leak(who, "/v1/admission", &resp);
                    decisions += 1;
                }
            }
        }
    }
    assert_eq!(
        decisions,
        2 * (3 * 3 + 3 * 3) + 1,
        "one answer per own team"
    );

    // Every SQL shape for every principal.
    let events = truth(&data, "events");
    let other_id = |org: &str| -> String {
        // An event id of the other organisation (as its admin reads it).
        let admin = people
            .iter()
            .find(|w| w.org != org && w.role == "admin")
            .unwrap();
        let (s, _, body) = call(
            &addr,
            "POST",
            "/v1/sql",
            Some(&admin.token),
            br#"{"sql": "SELECT event_id FROM events LIMIT 1"}"#,
        );
        assert_eq!(s, 200);
        let v: Value = serde_json::from_slice(&body).unwrap();
        v[0]["event_id"].as_str().unwrap().to_string()
    };
    let ids: BTreeMap<&str, String> = ORGS.iter().map(|(o, _)| (*o, other_id(o))).collect();
    let per_principal = |who: &Who| -> Vec<(String, String, String)> {
        let mut sent = Vec::new();
        for (shape, sql) in SHAPES {
            let sql = sql.replace("{other_id}", &ids[who.org]);
            let body =
                serde_json::to_vec(&json!({"sql": format!("{sql} -- {}", who.subject)})).unwrap();
            let (s, _, resp) = call(&addr, "POST", "/v1/sql", Some(&who.token), &body);
            let sent_text = format!("{sql} -- {}", who.subject);
            if who.role == "viewer" {
                assert_eq!(s, 403, "{shape} as viewer: {}", text(&resp));
                sent.push((sha(&sent_text), who.subject.clone(), "forbidden".into()));
                continue;
            }
            assert_eq!(s, 200, "{shape} as {}: {}", who.subject, text(&resp));
            sent.push((sha(&sent_text), who.subject.clone(), "ok".into()));
            assert_no_leak(who, shape, &resp);
            let v: Value = serde_json::from_slice(&resp).unwrap();
            match *shape {
                "get by id" => assert_eq!(
                    v.as_array().unwrap().len(),
                    0,
                    "{} read another org's event by id",
                    who.subject
                ),
                "scalar subquery" => {
                    let visible: u64 = events
                        .iter()
                        .filter(|((t, m), _)| who.sees(t, m))
                        .map(|(_, n)| n)
                        .sum();
                    assert_eq!(
                        v[0]["n"].as_u64().unwrap(),
                        visible,
                        "COUNT(*) as {}",
                        who.subject
                    );
                    assert!(visible > 0);
                }
                "price book" => assert!(!v.as_array().unwrap().is_empty()),
                "aggregate" | "list" => assert!(
                    !v.as_array().unwrap().is_empty(),
                    "{shape} as {} is empty",
                    who.subject
                ),
                _ => {}
            }
        }
        // dead_letters: organisation roles read theirs; team roles are refused.
        let body =
            serde_json::to_vec(&json!({"sql": "SELECT tenant, reason_code FROM dead_letters"}))
                .unwrap();
        let (s, _, resp) = call(&addr, "POST", "/v1/sql", Some(&who.token), &body);
        if who.team.is_none() {
            assert_eq!(s, 200, "{}", text(&resp));
            let v: Value = serde_json::from_slice(&resp).unwrap();
            assert!(
                v.as_array().unwrap().iter().all(|r| r["tenant"] == who.org),
                "dead letters leak"
            );
        } else {
            assert_eq!(s, 403, "{}", text(&resp));
        }
        for sql in REFUSED {
            let body = serde_json::to_vec(&json!({"sql": sql})).unwrap();
            let (s, _, resp) = call(&addr, "POST", "/v1/sql", Some(&who.token), &body);
            assert_eq!(s, 403, "{sql} as {}: {}", who.subject, text(&resp));
            let reason = serde_json::from_slice::<Value>(&resp).unwrap()["error"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(reason.len() > 20, "{sql}: reason {reason:?}");
        }
        sent
    };
    sent.extend(two_at_a_time(&people, per_principal).into_iter().flatten());
    assert!(!Path::new("/tmp/leak.parquet").exists());

    // Bad credentials: 401 with a reason, never data.
    let now = chrono::Utc::now().timestamp();
    let bad: Vec<(&str, String)> = vec![
        ("garbage", "not-a-token".into()),
        (
            "expired",
            jwt(
                "issuer.key.pem",
                Algorithm::RS256,
                &claims("x", "acme", None, &["admin"], now - 3600),
            ),
        ),
        (
            "forged",
            jwt(
                "attacker.key.pem",
                Algorithm::RS256,
                &claims("x", "acme", None, &["admin"], exp),
            ),
        ),
        (
            "hs256 with the public key",
            jwt(
                "issuer.pub.pem",
                Algorithm::HS256,
                &claims("x", "acme", None, &["admin"], exp),
            ),
        ),
        (
            "no org",
            jwt(
                "issuer.key.pem",
                Algorithm::RS256,
                &json!({"sub": "x", "roles": ["admin"], "exp": exp}),
            ),
        ),
        (
            "unknown role",
            jwt(
                "issuer.key.pem",
                Algorithm::RS256,
                &claims("x", "acme", None, &["root"], exp),
            ),
        ),
        (
            "team role without team",
            jwt(
                "issuer.key.pem",
                Algorithm::RS256,
                &claims("x", "acme", None, &["owner"], exp),
            ),
        ),
        (
            "pii in the roles claim",
            jwt(
                "issuer.key.pem",
                Algorithm::RS256,
                &claims("x", "acme", None, &["alice.pii@example.com"], exp),
            ),
        ),
        (
            "not valid yet",
            jwt(
                "issuer.key.pem",
                Algorithm::RS256,
                &json!({"sub": "x", "org": "acme", "roles": ["admin"], "exp": exp, "nbf": exp - 60}),
            ),
        ),
        (
            "unknown api key",
            format!("tgk_{key_id}_{}", "0".repeat(64)),
        ),
    ];
    for (what, token) in &bad {
        let (s, _, resp) = call(
            &addr,
            "GET",
            "/v1/reports/chargeback?month=2026-10",
            Some(token),
            b"",
        );
        assert_eq!(s, 401, "{what}: {}", text(&resp));
        let reason = serde_json::from_slice::<Value>(&resp).unwrap()["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(reason.len() > 10, "{what}: {reason}");
    }

    // Finance's chargeback equals the ledger's report, line for line; a team
    // lead's equals their own line; every download format holds the same.
    let ledger = tollgate(
        dir.path(),
        &[
            "report",
            "chargeback",
            "--month",
            "2026-10",
            "--format",
            "json",
        ],
    );
    assert!(ledger.status.success(), "{}", text(&ledger.stderr));
    let ledger: Value = serde_json::from_slice(&ledger.stdout).unwrap();
    let lines = |org: &str, team: Option<&str>| -> Vec<Value> {
        ledger["teams"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["tenant"] == org && team.is_none_or(|m| t["team"] == m))
            .cloned()
            .collect()
    };
    for who in people
        .iter()
        .filter(|w| w.role == "finance" || w.role == "owner")
    {
        let (s, _, body) = call(
            &addr,
            "GET",
            "/v1/reports/chargeback?month=2026-10",
            Some(&who.token),
            b"",
        );
        assert_eq!(s, 200);
        let got: Value = serde_json::from_slice(&body).unwrap();
        let want = lines(who.org, who.team);
        assert!(!want.is_empty());
        assert_eq!(
            got["teams"].as_array().unwrap(),
            &want,
            "chargeback as {}",
            who.subject
        );
        let sum: rust_decimal::Decimal = want
            .iter()
            .map(|t| {
                t["total"]
                    .as_str()
                    .unwrap()
                    .parse::<rust_decimal::Decimal>()
                    .unwrap()
            })
            .sum();
        assert_eq!(
            got["total"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap(),
            sum
        );
        sent.push((sha("month=2026-10"), who.subject.clone(), "ok".into()));
    }
    let finance = people
        .iter()
        .find(|w| w.role == "finance" && w.org == "acme")
        .unwrap();
    for format in ["csv", "parquet", "arrow"] {
        let (s, head, body) = call(
            &addr,
            "GET",
            &format!("/v1/reports/chargeback?month=2026-10&format={format}"),
            Some(&finance.token),
            b"",
        );
        assert_eq!(s, 200, "{format}");
        sent.push((
            sha(&format!("format={format}&month=2026-10")),
            finance.subject.clone(),
            "ok".into(),
        ));
        let batches: Vec<arrow::array::RecordBatch> = match format {
            "csv" => {
                assert!(head.contains("text/csv"));
                assert!(!text(&body).contains("globex"), "csv leak");
                continue;
            }
            "parquet" => parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                bytes::Bytes::from(body),
            )
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect(),
            _ => arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None)
                .unwrap()
                .map(|b| b.unwrap())
                .collect(),
        };
        let mut tenants = BTreeSet::new();
        for b in &batches {
            tenants.extend(strings(b, "tenant").into_iter().flatten());
        }
        tenants.remove(""); // the statement's total row
        assert_eq!(tenants, BTreeSet::from(["acme".to_string()]), "{format}");
    }

    // The CLI runs through the same authorisation and audit.
    let owner = people
        .iter()
        .find(|w| w.role == "owner" && w.team == Some("search"))
        .unwrap();
    std::fs::write(dir.path().join("owner.token"), &owner.token).unwrap();
    let q = "SELECT tenant, team, COUNT(*) AS n FROM events GROUP BY tenant, team";
    let out = tollgate(
        dir.path(),
        &["sql", "--token", "owner.token", "--format", "json", q],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["team"], "search");
    sent.push((sha(q), owner.subject.clone(), "ok".into()));
    let out = tollgate(
        dir.path(),
        &[
            "sql",
            "--token",
            "owner.token",
            "SELECT * FROM information_schema.tables",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("information_schema"),
        "{}",
        text(&out.stderr)
    );
    let out = tollgate(
        dir.path(),
        &[
            "report",
            "chargeback",
            "--month",
            "2026-10",
            "--format",
            "json",
            "--token",
            "owner.token",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["teams"].as_array().unwrap(),
        &lines("acme", Some("search"))
    );

    // The hostile insider: errors, counts, limits and the audit's reach.
    error_channel(&addr, &people, &events, dir.path());
    count_channel(&addr, &people, dir.path());
    bounded_queries(&addr, &people, dir.path());
    audit_completeness(&addr, &people, dir.path(), &data);
    the_wall_is_what_holds(&data);

    // A revoked API key stops working within the documented bound.
    let out = tollgate(dir.path(), &["apikey", "revoke", &key_id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let revoked = std::time::Instant::now();
    let resp = loop {
        let (s, _, resp) = call(&addr, "GET", "/v1/whoami", Some(&api_key), b"");
        if s == 401 {
            break resp;
        }
        assert_eq!(s, 200);
        assert!(
            revoked.elapsed() <= tollgate_queries::apikeys::REFRESH + Duration::from_secs(2),
            "a revoked key still works after the bound"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(text(&resp).contains("revoked"), "{}", text(&resp));

    // SQL naming a person (a literal, and a column name a planner error
    // quotes) is kept in the audit only as the person's token.
    let contributor = people.iter().find(|w| w.role == "contributor").unwrap();
    for (sql, code) in [
        ("SELECT COUNT(*) AS n FROM tool_calls WHERE arguments_json LIKE '%alice.pii@example.com%'", 200),
        ("SELECT \"alice.pii@example.com\" FROM tool_calls", 400),
    ] {
        let body = serde_json::to_vec(&json!({"sql": sql})).unwrap();
        let (s, _, resp) = call(&addr, "POST", "/v1/sql", Some(&contributor.token), &body);
        assert_eq!(s, code, "{sql}: {}", text(&resp));
    }

    // Every request is in the query audit with its principal.
    // One pass over the audit files: the entries, and no raw PII in them.
    let mut audit: Vec<(String, String, String)> = Vec::new();
    let mut redacted = 0;
    for f in audit_files(&data, "query_log") {
        for b in batches(&f) {
            let (h, sub, out) = (
                strings(&b, "sql_sha256"),
                strings(&b, "subject"),
                strings(&b, "outcome"),
            );
            for ((h, sub), out) in h.into_iter().zip(sub).zip(out) {
                audit.push((h.unwrap_or_default(), sub.unwrap(), out.unwrap()));
            }
            for name in ["sql_redacted", "error"] {
                for v in strings(&b, name).into_iter().flatten() {
                    assert!(
                        !v.contains("alice.pii@example.com"),
                        "raw PII in the query audit's {name}: {v}"
                    );
                    redacted += usize::from(v.contains("<email:"));
                }
            }
        }
    }
    for s in &sent {
        assert!(audit.contains(s), "not in the query audit: {s:?}");
    }
    assert!(
        redacted >= 3,
        "the text and the error are kept as tokens ({redacted})"
    );
    // An auditor reads the audit of their organisation only.
    let auditor = people
        .iter()
        .find(|w| w.role == "auditor" && w.org == "globex")
        .unwrap();
    let body =
        serde_json::to_vec(&json!({"sql": "SELECT tenant, subject FROM query_log"})).unwrap();
    let (s, _, resp) = call(&addr, "POST", "/v1/sql", Some(&auditor.token), &body);
    assert_eq!(s, 200);
    let v: Value = serde_json::from_slice(&resp).unwrap();
    assert!(v.as_array().unwrap().len() > 20);
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["tenant"] == "globex"));

    // /metrics counts the requests by outcome, without tenant labels.
    let (_, _, m) = call(&addr, "GET", "/metrics", None, b"");
    let m = text(&m);
    assert!(
        m.contains("tollgate_query_requests_total{endpoint=\"/v1/sql\",outcome=\"refused\"}"),
        "{m}"
    );
    assert!(!m.contains("acme") && !m.contains("globex"));
}

/// Whether `msg` holds `name` as a word (not inside another word, as
/// "vision" is in "division").
fn quotes(msg: &str, name: &str) -> bool {
    msg.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .any(|w| w == name)
}

/// Every name of the suite's data: tenants and teams.
fn names() -> Vec<&'static str> {
    ORGS.iter()
        .flat_map(|(o, teams)| std::iter::once(*o).chain(teams.iter().copied()))
        .collect()
}

/// `the row is outside who's scope`, over columns qualified by `q`.
fn outside(who: &Who, q: &str) -> String {
    match who.team {
        Some(t) => format!("NOT ({q}tenant = '{}' AND {q}team = '{t}')", who.org),
        None => format!("{q}tenant <> '{}'", who.org),
    }
}

/// CTEs stacked `levels` deep, each adding `terms` times 1 to the last:
/// their projections merge into one expression `levels x terms` deep.
fn stacked_ctes(levels: usize, terms: usize) -> String {
    format!(
        "WITH t0(c) AS (VALUES (CAST(1 AS BIGINT))), {} SELECT c FROM t{levels}",
        (1..=levels)
            .map(|i| format!(
                "t{i} AS (SELECT c{} AS c FROM t{})",
                "+1".repeat(terms),
                i - 1
            ))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn sql_call(addr: &str, who: &Who, sql: &str) -> (u16, String, Value) {
    let body = serde_json::to_vec(&json!({ "sql": sql })).unwrap();
    let (s, head, resp) = call(addr, "POST", "/v1/sql", Some(&who.token), &body);
    let v = serde_json::from_slice(&resp).unwrap_or(Value::Null);
    (s, head, v)
}

/// `check` run for every principal, two principals at a time (the server
/// runs one query per core): the suite is the CLI suite's longest test, and
/// its request loops are most of it. A failed check fails the test, its
/// message printed by the thread that failed.
fn two_at_a_time<T: Send>(people: &[Who], check: impl Fn(&Who) -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let check = &check;
        let handles: Vec<_> = people
            .chunks(people.len().div_ceil(2).max(1))
            .map(|chunk| s.spawn(move || chunk.iter().map(check).collect::<Vec<T>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a principal's checks failed (above)"))
            .collect()
    })
}

/// Values through errors: expressions that fail only on out-of-scope rows,
/// in WHERE, JOIN ON and OR branches, with CAST, regex, timestamp and
/// division: every one answers the caller's own count (the rows that would
/// fail never reach the expression); expressions that fail on the caller's
/// own rows answer 400 naming the expression, never a value.
fn error_channel(addr: &str, people: &[Who], events: &BTreeMap<(String, String), u64>, dir: &Path) {
    let probes: usize = two_at_a_time(people, |who| {
        if who.role == "viewer" {
            return 0;
        }
        let mut probes = 0;
        let o = outside(who, "");
        let oe = outside(who, "e.");
        let visible: u64 = events
            .iter()
            .filter(|((t, m), _)| who.sees(t, m))
            .map(|(_, n)| n)
            .sum();
        let shapes = [
            ("cast", format!("SELECT count(*) AS n FROM events WHERE CAST(CASE WHEN {o} THEN tenant || '/' || team || '/' || \"user\" ELSE '0' END AS INT) = 0"), Some(visible)),
            ("regex", format!("SELECT count(*) AS n FROM events WHERE 'x' ~ CASE WHEN {o} THEN '(' || team ELSE 'x' END"), Some(visible)),
            ("timestamp", format!("SELECT count(*) AS n FROM events WHERE CAST(CASE WHEN {o} THEN tenant || team ELSE '2026-10-01T00:00:00' END AS TIMESTAMP) IS NOT NULL"), Some(visible)),
            ("division", format!("SELECT count(*) AS n FROM events WHERE 1 / CASE WHEN {o} THEN 0 ELSE 1 END = 1"), Some(visible)),
            ("or branch", format!("SELECT count(*) AS n FROM events WHERE event_id = 'none' OR CAST(CASE WHEN {o} THEN team ELSE '1' END AS INT) = 1"), Some(visible)),
            ("join on", format!("SELECT count(*) AS n FROM tool_calls c JOIN events e ON c.event_id = e.event_id AND CAST(CASE WHEN {oe} THEN e.team ELSE '1' END AS INT) = 1"), None),
            ("view", format!("SELECT count(*) AS n FROM costed_usage WHERE CAST(CASE WHEN {o} THEN team ELSE '1' END AS INT) = 1"), None),
        ];
        for (what, sql, want) in shapes {
            let (s, _, v) = sql_call(addr, who, &sql);
            assert_eq!(s, 200, "{what} probe as {}: {v}", who.subject);
            let n = v[0]["n"].as_u64().unwrap();
            match want {
                Some(w) => assert_eq!(n, w, "{what} probe as {}", who.subject),
                None => assert!(n > 0, "{what} probe as {} counted nothing", who.subject),
            }
            probes += 1;
        }
        // Failures on the caller's own rows: 400, the expression named, no value.
        for (what, sql, names_it) in [
            (
                "cast",
                "SELECT CAST(team AS INT) AS x FROM events",
                "CAST(... AS INT) over column team",
            ),
            (
                "regex",
                "SELECT count(*) AS n FROM events WHERE 'x' ~ ('(' || team)",
                "pattern",
            ),
            (
                "timestamp",
                "SELECT CAST(tenant AS TIMESTAMP) AS t FROM events",
                "over column tenant",
            ),
            (
                "division",
                "SELECT 1 / (length(team) - length(team)) AS x FROM events",
                "divisor",
            ),
        ] {
            let (s, _, v) = sql_call(addr, who, sql);
            assert_eq!(s, 400, "{what} as {}: {v}", who.subject);
            let msg = v["error"].as_str().unwrap();
            assert!(msg.contains(names_it), "{what} as {}: {msg}", who.subject);
            for n in names() {
                assert!(
                    !quotes(msg, n),
                    "{what} as {} quotes {n}: {msg}",
                    who.subject
                );
            }
        }
        probes
    })
    .into_iter()
    .sum();
    assert!(probes > 100, "{probes} probes");
    // User mistakes found while planning are 400 too, with the reason.
    let who = people.iter().find(|w| w.role == "finance").unwrap();
    for (sql, says) in [
        ("SELECT $1 AS x", "Placeholder"),
        ("SELECT CAST('abc' AS INT) AS x", "Cannot cast"),
        ("SELECT no_such_column FROM events", "no_such_column"),
    ] {
        let (s, _, v) = sql_call(addr, who, sql);
        assert_eq!(s, 400, "{sql}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{sql}: {v}");
    }
    // And from `tollgate sql --token`.
    let owner = people
        .iter()
        .find(|w| w.role == "owner" && w.team == Some("search"))
        .unwrap();
    let sql = format!(
        "SELECT count(*) AS n FROM events WHERE CAST(CASE WHEN {} THEN tenant || team ELSE '0' END AS INT) = 0",
        outside(owner, "")
    );
    let out = tollgate(
        dir,
        &["sql", "--token", "owner.token", "--format", "json", &sql],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v[0]["n"].as_u64().unwrap(),
        events[&("acme".to_string(), "search".to_string())]
    );
    let out = tollgate(
        dir,
        &[
            "sql",
            "--token",
            "owner.token",
            "SELECT CAST(tenant || team AS INT) FROM events",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    for n in names() {
        assert!(!quotes(&text(&out.stderr), n), "{}", text(&out.stderr));
    }
}

/// Sizes through counts: Kafka coordinates read as NULL, `/v1/verify` has
/// no count, file or hash, and a frozen statement is cut to the caller.
fn count_channel(addr: &str, people: &[Who], dir: &Path) {
    for who in people.iter().filter(|w| w.role != "viewer") {
        let (s, _, v) = sql_call(
            addr,
            who,
            "SELECT min(kafka_offset) AS lo, max(kafka_offset) AS hi, count(kafka_partition) AS p, count(*) AS n FROM events",
        );
        assert_eq!(s, 200, "{v}");
        assert!(
            v[0]["lo"].is_null() && v[0]["hi"].is_null(),
            "offsets as {}: {v}",
            who.subject
        );
        assert_eq!(v[0]["p"], 0, "partitions as {}: {v}", who.subject);
        assert!(v[0]["n"].as_u64().unwrap() > 0);
    }
    for who in people
        .iter()
        .filter(|w| matches!(w.role, "admin" | "auditor"))
    {
        let (s, _, body) = call(addr, "GET", "/v1/verify", Some(&who.token), b"");
        assert_eq!(s, 200, "{}", text(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["checked_at", "detail", "ok", "scope"], "{v}");
        assert_eq!(v["ok"], true, "{v}");
        for k in ["detail", "scope"] {
            assert!(
                !v[k].as_str().unwrap().chars().any(|c| c.is_ascii_digit()),
                "{k} has a figure: {v}"
            );
        }
    }
    // A closed month: the frozen statement holds every team; each reader
    // gets its own lines and figures that add up to them only.
    let out = tollgate(dir, &["report", "close", "--month", "2026-10"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for who in people
        .iter()
        .filter(|w| w.role == "owner" || w.role == "finance")
    {
        let (s, _, body) = call(
            addr,
            "GET",
            "/v1/reports/chargeback?month=2026-10",
            Some(&who.token),
            b"",
        );
        assert_eq!(s, 200, "{}", text(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_no_leak(who, "frozen chargeback", &body);
        let lines = v["teams"].as_array().unwrap();
        assert!(!lines.is_empty());
        let unpriced: u64 = lines
            .iter()
            .map(|t| t["unpriced_events"].as_u64().unwrap())
            .sum();
        assert_eq!(v["unpriced_events"].as_u64().unwrap(), unpriced, "{v}");
    }
}

/// Limits on text, depth and size answered 400 with the limit's name; the
/// deepest input the limits allow answers and the process stays up.
fn bounded_queries(addr: &str, people: &[Who], dir: &Path) {
    let who = people.iter().find(|w| w.role == "contributor").unwrap();
    let chain = |n: usize, op: &str| format!("SELECT {} AS x", vec!["1"; n].join(op));
    // max_expr_depth is 128: a query is one level, a chain of n terms n more.
    let (s, _, v) = sql_call(addr, who, &chain(127, "+"));
    assert_eq!(s, 200, "at the depth limit: {v}");
    assert_eq!(v[0]["x"], 127);
    let deepest_or = format!(
        "SELECT count(*) AS n FROM events WHERE {}",
        vec!["team = 'x'"; 63].join(" OR ")
    );
    assert_eq!(sql_call(addr, who, &deepest_or).0, 200);
    for (sql, limit) in [
        (chain(128, "+"), "max_expr_depth"),
        (chain(1000, "+"), "max_expr_depth"),
        (chain(32_000, "+"), "max_expr_depth"),
        (
            format!(
                "SELECT count(*) FROM events WHERE {}",
                vec!["team = 'x'"; 1000].join(" OR ")
            ),
            "max_expr_depth",
        ),
        (
            format!(
                "SELECT count(*) FROM events WHERE {}",
                vec!["team <> 'x'"; 1000].join(" AND ")
            ),
            "max_expr_depth",
        ),
        (chain(40_000, "+"), "max_sql_bytes"),
        (
            format!("SELECT {}1{}", "(".repeat(500), ")".repeat(500)),
            "nests deeper",
        ),
        (
            format!(
                "WITH x AS (SELECT 1 AS v) SELECT count(*) FROM {}",
                (0..3000)
                    .map(|i| format!("x a{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "joins or combines",
        ),
        (vec!["SELECT 1"; 3900].join(" EXCEPT "), "joins or combines"),
        // What planning multiplies: CTEs once per reference, BETWEEN
        // operands, stacked projections merged.
        (
            format!(
                "WITH t0 AS (SELECT 1 AS c), {} SELECT count(*) FROM t30",
                (1..=30)
                    .map(|i| format!("t{i} AS (SELECT a.c FROM t{} a, t{} b)", i - 1, i - 1))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "joins or combines",
        ),
        (
            format!(
                "WITH v(c) AS (VALUES (1)) SELECT c{} FROM v",
                " BETWEEN false AND true".repeat(60)
            ),
            "max_plan_nodes",
        ),
        (
            stacked_ctes(40, 120),
            "merge into expressions",
        ),
        (
            "SELECT length(replace(repeat('x', 4000000), 'x', repeat('y', 4000000))) AS n"
                .to_string(),
            "a call may build",
        ),
        (
            "SELECT arrow_cast(NULL, 'FixedSizeBinary(2147483647)') AS b FROM events".to_string(),
            "a call may build",
        ),
        (
            format!(
                "SELECT count(*) FROM events GROUP BY team, CUBE({})",
                (1..=40).map(|i| format!("length(team) + {i}")).collect::<Vec<_>>().join(", ")
            ),
            "max_plan_nodes",
        ),
        (
            "SELECT length(encode(encode(encode(repeat('x', 3000000), 'hex'), 'hex'), 'hex')) AS n".to_string(),
            "a call may build",
        ),
        (
            format!(
                "WITH t0 AS (SELECT payload_json || payload_json AS s FROM events), {} SELECT max(length(s)) AS n FROM t20",
                (1..=20)
                    .map(|i| format!("t{i} AS (SELECT s || s AS s FROM t{})", i - 1))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "a call may build",
        ),
        (
            format!(
                r#"WITH "c.0" AS (SELECT 1 AS c), {} SELECT count(*) FROM "c.30""#,
                (1..=30)
                    .map(|i| format!(r#""c.{i}" AS (SELECT a.c FROM "c.{}" a, "c.{}" b)"#, i - 1, i - 1))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "joins or combines",
        ),
        // Values as large as the caller asks: while planning, and running.
        (
            "SELECT repeat('x', 2147483647) AS a, lpad('x', 2147483646) AS b".to_string(),
            "a call may build",
        ),
        (
            "SELECT rpad('x', 2147483647) AS a".to_string(),
            "a call may build",
        ),
        (
            "SELECT repeat(payload_json, 100000) AS a FROM events".to_string(),
            "a call may build",
        ),
    ] {
        let (s, _, v) = sql_call(addr, who, &sql);
        assert_eq!(s, 400, "{}...: {v}", &sql[..40]);
        assert!(v["error"].as_str().unwrap().contains(limit), "{v}");
        assert_eq!(
            call(addr, "GET", "/healthz", None, b"").0,
            200,
            "the server died"
        );
    }
    // Stacked CTEs as deep as the merged-depth limit allows: answered.
    let stacked = stacked_ctes(4, 120);
    let (s, _, v) = sql_call(addr, who, &stacked);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v[0]["c"], 481);
    // Nested subqueries as deep as the parser allows.
    let mut nested = "SELECT tenant FROM events".to_string();
    for _ in 0..20 {
        nested = format!("SELECT tenant FROM ({nested}) AS t");
    }
    let (s, _, v) = sql_call(
        addr,
        who,
        &format!("SELECT count(*) AS n FROM ({nested}) AS t"),
    );
    assert!(s == 200 || s == 400, "{s}: {v}");
    assert_eq!(
        call(addr, "GET", "/healthz", None, b"").0,
        200,
        "the server died"
    );
    // The memory limit, through `tollgate sql` (the same path as the API).
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["sql", "--token", "owner.token", &format!(
            "WITH b AS (SELECT {} AS k FROM events) SELECT count(*) AS n FROM b b1 JOIN b b2 ON b1.k = b2.k",
            vec!["payload_json"; 16].join(" || ")
        )])
        .current_dir(dir)
        .env_remove("TOLLGATE_CONFIG")
        .env("TOLLGATE__SERVER__LIMITS__MAX_MEMORY_MIB", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("max_memory_mib"),
        "{}",
        text(&out.stderr)
    );
}

/// The audit's reach: requests answered by the router (404, 405), bodies
/// over the limit (413), refused limits and a request that timed out are
/// all in `query_log`, one outcome entry each; a request that ran has a
/// `started` entry too; nothing unparsed is kept raw.
fn audit_completeness(addr: &str, people: &[Who], dir: &Path, data: &Path) {
    let who = people.iter().find(|w| w.role == "contributor").unwrap();
    let entries = || {
        let mut out: Vec<(String, String, String, String)> = Vec::new();
        for f in audit_files(data, "query_log") {
            for b in batches(&f) {
                let [q, o, e, r] =
                    ["query_id", "outcome", "endpoint", "error"].map(|c| strings(&b, c));
                for (((q, o), e), r) in q.into_iter().zip(o).zip(e).zip(r) {
                    let g = |v: Option<String>| v.unwrap_or_default();
                    out.push((g(q), g(o), g(e), g(r)));
                }
            }
        }
        out
    };
    let finals =
        |e: &[(String, String, String, String)]| e.iter().filter(|x| x.1 != "started").count();
    let before = finals(&entries());
    let id = |head: &str| -> String {
        head.lines()
            .find_map(|l| l.strip_prefix("x-tollgate-query-id: "))
            .unwrap_or_else(|| panic!("no query id: {head}"))
            .trim()
            .to_string()
    };
    let mut want: Vec<(String, &str)> = Vec::new();
    let (s, head, _) = call(addr, "GET", "/v1/nope", Some(&who.token), b"");
    assert_eq!(s, 404);
    want.push((id(&head), "not_found"));
    let (s, head, _) = call(addr, "GET", "/v1/alice.pii@example.com", None, b"");
    assert_eq!(s, 404);
    want.push((id(&head), "not_found"));
    let (s, head, _) = call(addr, "DELETE", "/v1/sql", Some(&who.token), b"");
    assert_eq!(s, 405);
    want.push((id(&head), "method_not_allowed"));
    // A body over the limit: the server answers on its declared length,
    // before reading it (nothing of it is sent, so the server's close is
    // clean and the answer can be read).
    let mut st = TcpStream::connect(addr).unwrap();
    st.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(st, "POST /v1/sql HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", who.token, 3 << 20).unwrap();
    let mut raw = Vec::new();
    let _ = st.read_to_end(&mut raw);
    let head = text(&raw).to_lowercase();
    assert!(head.starts_with("http/1.1 413"), "{head}");
    want.push((id(&head), "too_large"));
    let (s, head, _) = sql_call(addr, who, &format!("SELECT {}", vec!["1"; 500].join("+")));
    assert_eq!(s, 400);
    want.push((id(&head), "limit"));
    let (s, head, _) = sql_call(addr, who, "SELECT 1 AS one");
    assert_eq!(s, 200);
    want.push((id(&head), "ok"));

    // A request that times out, on a second server with a tight limit.
    let (_slow, addr2) = serve(dir, &[("TOLLGATE__SERVER__LIMITS__TIMEOUT", "300ms")]);
    let (s, head, body) = call(&addr2, "POST", "/v1/sql", Some(&who.token), br#"{"sql": "SELECT count(*) AS n FROM events a JOIN events b ON a.tenant = b.tenant WHERE a.event_id < b.event_id"}"#);
    assert_eq!(s, 400, "{}", text(&body));
    assert!(
        text(&body).contains("server.limits.timeout"),
        "{}",
        text(&body)
    );
    want.push((id(&head), "limit"));
    assert_eq!(call(addr, "GET", "/healthz", None, b"").0, 200);

    let after = entries();
    assert_eq!(
        finals(&after) - before,
        want.len(),
        "requests in, entries out"
    );
    for (qid, outcome) in &want {
        let mine: Vec<&(String, String, String, String)> =
            after.iter().filter(|e| &e.0 == qid).collect();
        assert!(
            mine.iter().any(|e| e.1 == *outcome),
            "{qid} {outcome}: {mine:?}"
        );
        // Authenticated and permitted requests were recorded before they
        // ran; those the server answered itself never ran.
        let ran = matches!(*outcome, "ok" | "limit");
        assert_eq!(
            mine.iter().any(|e| e.1 == "started"),
            ran,
            "{qid}: {mine:?}"
        );
        for e in &mine {
            assert!(
                !e.2.contains("alice") && !e.3.contains("alice"),
                "raw path kept: {e:?}"
            );
        }
    }
}

/// The scan-level wall is what holds: the same principal's probe, in a
/// session with only the analyzer rule (the scope as a filter above each
/// scan, which the optimizer merges with the user's predicate), fails on
/// another team's row; behind the wall it counts its own rows.
fn the_wall_is_what_holds(data: &Path) {
    use tollgate_queries::{audit::QueryAudit, Credential, Principal, Reader, ReaderConfig, Role};
    let storage = tollgate_storage::StorageConfig {
        data_dir: data.to_path_buf(),
        ..Default::default()
    };
    let reader = |wall: bool| {
        let audit = QueryAudit::new(
            tollgate_storage::Storage::open(&storage, "test").unwrap(),
            None,
        );
        let r = Reader::new(
            ReaderConfig {
                storage: storage.clone(),
                ledger: tollgate_ledger::LedgerConfig::default(),
                teams: Vec::new(),
                shared_teams: Vec::new(),
                max_rows: 1000,
                limits: Default::default(),
            },
            tollgate_fixtures::demo_price_book().unwrap(),
            audit,
        );
        if wall {
            r
        } else {
            r.without_scan_wall()
        }
    };
    let p = Principal::new(
        "owner".into(),
        "acme".into(),
        Some("ml-research".into()),
        [Role::Owner].into_iter().collect(),
        Credential::Jwt,
    )
    .unwrap();
    let probe = "SELECT count(*) AS n FROM events WHERE CAST(CASE WHEN NOT (tenant = 'acme' AND team = 'ml-research') THEN tenant || '/' || team ELSE '0' END AS INT) = 0";
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let walled = rt.block_on(reader(true).sql(&p, probe));
    let rows = walled.expect("behind the wall the probe counts the caller's rows");
    assert_eq!(rows.rows, 1);
    let bare = rt.block_on(reader(false).sql(&p, probe));
    assert!(
        bare.is_err(),
        "without the scan-level wall the probe reaches other teams' rows: {bare:?}"
    );
}
