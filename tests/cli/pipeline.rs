//! `tollgate run` against real brokers: a large load produced by two
//! different clients, two instances sharing a group, a broker outage,
//! event-id dedupe, the HTTP gateway and dead-letter replay.
//!
//! Broker notes. The shared test broker is tansu (see `.ci/run`); it
//! answers a fetch that starts inside a record batch from the next batch
//! on, and reports a high watermark of the last batch's base offset + 1,
//! so the producers of these tests send one record per batch
//! (`batch.num.messages=1`, kafka-python `batch_size=1`). tansu also does
//! not always expel a SIGKILLed group member, so the tests that need a
//! group to rebalance after a kill, or a broker that goes away, use
//! librdkafka's mock cluster (a Kafka-protocol broker on 127.0.0.1 inside
//! the test process).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use serde_json::Value;

use super::{column, test_broker, text, tollgate, tollgate_stdin, walk};

/// A fixture workload: its NDJSON lines and the generator's labels.
struct Workload {
    lines: Vec<Vec<u8>>,
    valid: BTreeSet<String>,
    invalid: u64,
}

/// The generator's records for the window ending today, and its labels:
/// the ids of the valid events and the number of bad ones.
pub(super) struct Labelled {
    pub(super) records: Vec<Vec<u8>>,
    pub(super) valid: BTreeSet<String>,
    pub(super) invalid: u64,
}

/// The first day of a `days`-day workload that ends yesterday. A test
/// computes it once and passes it both to `tollgate fixtures generate
/// --start` and to [`labelled`], so that the two agree however long the
/// test runs (a run across midnight gave them different windows).
pub(super) fn first_day(days: u32) -> chrono::NaiveDate {
    chrono::Utc::now().date_naive() - chrono::Duration::days(i64::from(days))
}

/// Runs the generator in-process with the parameters `tollgate fixtures
/// generate --start START --days D --events-per-day N --seed S` uses.
pub(super) fn labelled(start: chrono::NaiveDate, days: u32, per_day: u32, seed: u64) -> Labelled {
    let mut params =
        tollgate_fixtures::Params::ending_before(start + chrono::Duration::days(i64::from(days)));
    (params.days, params.events_per_day, params.seed) = (days, per_day, seed);
    params.start = start;
    let generator =
        tollgate_fixtures::Generator::new(params, tollgate_fixtures::demo_price_book().unwrap())
            .unwrap();
    let mut out = Labelled {
        records: Vec::new(),
        valid: BTreeSet::new(),
        invalid: 0,
    };
    generator
        .run(|r| -> Result<(), tollgate_fixtures::Error> {
            match r.expected {
                Some(_) => out.invalid += 1,
                None => {
                    let v: Value = serde_json::from_slice(&r.bytes).unwrap();
                    out.valid.insert(v["id"].as_str().unwrap().to_string());
                }
            }
            out.records.push(r.bytes.clone());
            Ok(())
        })
        .unwrap();
    out
}

/// Generates `days` x `per_day` events with `tollgate fixtures generate`
/// and labels them with the generator run in-process (same parameters).
fn workload(dir: &Path, days: u32, per_day: u32, seed: u64) -> Workload {
    let start = first_day(days);
    let out = tollgate(
        dir,
        &[
            "fixtures",
            "generate",
            "--start",
            &start.to_string(),
            "--days",
            &days.to_string(),
            "--events-per-day",
            &per_day.to_string(),
            "--seed",
            &seed.to_string(),
            "-q",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<Vec<u8>> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let expected = labelled(start, days, per_day, seed);
    assert_eq!(lines.len(), expected.records.len());
    for (i, (line, record)) in lines.iter().zip(&expected.records).enumerate() {
        assert_eq!(line, record, "line {i} differs from the generator's record");
    }
    let Labelled { valid, invalid, .. } = expected;
    Workload {
        lines,
        valid,
        invalid,
    }
}

fn ndjson(lines: &[&Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

fn nonce() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

/// Writes `tollgate.toml` for `topic` at `brokers`, with `extra` appended.
/// For tansu, producers send one record per batch (see the module's note);
/// librdkafka's mock cluster keeps only about 10,000 batches per partition,
/// so there they batch as usual.
fn config(dir: &Path, brokers: &str, topic: &str, extra: &str) {
    // One record per request is slow on the debug broker while other
    // suites load it too: give deliveries 15 minutes, not librdkafka's 5.
    let per_batch = if brokers == test_broker_address() {
        "\"batch.num.messages\" = \"1\"\n\"message.timeout.ms\" = \"900000\"\n"
    } else {
        ""
    };
    std::fs::write(
        dir.join("tollgate.toml"),
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\nraw_topic = \"{topic}\"\ndead_letter_topic = \"{topic}-dlq\"\ngroup_id = \"g-{topic}\"\npartitions = 3\n\
             [kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n{per_batch}\
             [ingest]\nbatch_records = 2000\nbatch_latency = \"1s\"\n{extra}"
        ),
    )
    .unwrap();
}

fn test_broker_address() -> String {
    std::env::var("TOLLGATE_TEST_KAFKA").unwrap_or_default()
}

/// Starts `tollgate run` with its log (at info) in `log`.
fn spawn_run(dir: &Path, args: &[&str], log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("run")
        .args(args)
        .env("TOLLGATE_LOG", "info")
        .env_remove("TOLLGATE_CONFIG")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Waits for `child` to exit by itself within `limit`; kills it and fails
/// otherwise.
fn wait_exit(child: &mut Child, limit: Duration, log: &Path) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "tollgate run failed: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            return;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!(
                "tollgate run did not finish within {limit:?}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `log` contains `needle`.
fn wait_for_log(log: &Path, needle: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let t = std::fs::read_to_string(log).unwrap_or_default();
        if t.contains(needle) {
            return t;
        }
        assert!(
            start.elapsed() < limit,
            "{needle:?} not logged within {limit:?}: {t}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stored ids exactly the valid ones, dead letters exactly the invalid
/// ones, and `verify` passes.
fn assert_stored_exactly(dir: &Path, w: &Workload) {
    let v = tollgate(dir, &["verify"]);
    assert!(v.status.success(), "{}{}", text(&v.stdout), text(&v.stderr));
    let root = dir.join("tollgate-data");
    let ids = column(&root, "events", "event_id");
    let stored: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), stored.len(), "an event was stored twice");
    let status = tollgate(dir, &["status"]);
    assert_eq!(
        stored.len(),
        w.valid.len(),
        "{}{}",
        text(&status.stdout),
        text(&v.stdout)
    );
    assert_eq!(
        stored.len(),
        w.valid.len(),
        "stored {} of {} valid events",
        stored.len(),
        w.valid.len()
    );
    assert!(
        stored == w.valid,
        "the stored ids differ from the produced valid ids"
    );
    assert_eq!(
        column(&root, "dead_letters", "reason_code").len() as u64,
        w.invalid
    );
}

/// The writers of each partition's commit records.
fn writers(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in walk(&dir.join("tollgate-data/commits")) {
        let r: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        out.entry(r["partition"].to_string())
            .or_default()
            .insert(r["writer"].as_str().unwrap().to_string());
    }
    out
}

/// A free port on 127.0.0.1, for a process the test starts.
///
/// The port is released before the caller's process binds it, and the
/// kernel may hand the same port to the next `bind` on port 0: a port
/// given out once is never given out again by this process (a test that
/// asked for four ports once got the gateway's port for `serve` as well).
pub(super) fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<BTreeSet<u16>> = std::sync::Mutex::new(BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if given.insert(port) {
            return port;
        }
    }
}

/// One HTTP/1.1 request; the status code, headers and body.
pub(super) fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = text(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_string())
}

#[test]
fn a_large_load_from_two_clients_is_stored_exactly_once() {
    let Some(brokers) = test_broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("tollgate-load-{}", nonce());
    config(dir.path(), &brokers, &topic, "");
    // Ten days (so that the weekend share is bounded, below) of 6,000 a
    // day: enough for 50 resends a thousand lines apart.
    let (days, per_day) = (10, 6_000);
    let w = workload(dir.path(), days, per_day, 41);
    // The generator puts fewer events on weekends (0.43x a mean day, 1.23x
    // on weekdays), so the count depends on which days the window ending
    // today covers: from 91 % of days x per_day (four weekend days) to 107 %
    // (two). The exact count is the generator's own, checked line by line
    // in `workload`; here only that the load is large on any calendar day.
    let nominal = u64::from(days) * u64::from(per_day);
    assert!(
        w.lines.len() as u64 >= nominal * 9 / 10,
        "{} events, {nominal} nominal",
        w.lines.len()
    );

    // Every fifth line that is UTF-8 goes through kafka-python, the rest
    // through `tollgate emit` (which also creates the topic).
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for (i, l) in w.lines.iter().enumerate() {
        if i % 5 == 0 && std::str::from_utf8(l).is_ok() && !l.contains(&b'\t') {
            theirs.push(l);
        } else {
            ours.push(l);
        }
    }
    let out = tollgate_stdin(dir.path(), &["emit"], ndjson(&ours));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("every one acknowledged"),
        "{}",
        text(&out.stderr)
    );
    let mut tsv = Vec::new();
    for l in &theirs {
        let team = serde_json::from_slice::<Value>(l)
            .ok()
            .and_then(|v| v["data"]["team"].as_str().map(str::to_string))
            .unwrap_or_else(|| "unknown".into());
        tsv.extend_from_slice(team.as_bytes());
        tsv.push(b'\t');
        tsv.extend_from_slice(l);
        tsv.push(b'\n');
    }
    let tsv_path = dir.path().join("python.tsv");
    std::fs::write(&tsv_path, tsv).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ingest/tests/kafka_interop.py");
    let py = Command::new("python3")
        .arg(script)
        .args(["produce", &brokers, &topic])
        .arg(&tsv_path)
        .output()
        .unwrap();
    assert!(py.status.success(), "kafka-python: {}", text(&py.stderr));
    assert!(text(&py.stdout).contains(&format!("\"sent\": {}", theirs.len())));

    let log = dir.path().join("run.log");
    let mut run = spawn_run(dir.path(), &["--exit-when-idle", "8s"], &log);
    wait_exit(&mut run, Duration::from_secs(600), &log);
    assert_stored_exactly(dir.path(), &w);

    // `status` reads consumed = stored + dead-lettered off, with no lag.
    let status = tollgate(dir.path(), &["status", "--json"]);
    assert!(status.status.success(), "{}", text(&status.stderr));
    let s: Value = serde_json::from_slice(&status.stdout).unwrap();
    let parts = s["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    let sum = |k: &str| parts.iter().map(|p| p[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("consumed"), w.lines.len() as u64);
    assert_eq!(sum("stored"), w.valid.len() as u64);
    assert_eq!(sum("dead_lettered"), w.invalid);
    assert!(parts.iter().all(|p| p["lag"] == 0), "{s}");

    // A producer resends 50 events: they are counted as duplicates, never
    // stored twice, also across a restart (the index is rebuilt).
    let valid_lines: Vec<&Vec<u8>> = w
        .lines
        .iter()
        .filter(|l| {
            serde_json::from_slice::<Value>(l)
                .ok()
                .and_then(|v| v["id"].as_str().map(|id| w.valid.contains(id)))
                .unwrap_or(false)
        })
        .step_by(997)
        .take(50)
        .collect();
    let out = tollgate_stdin(dir.path(), &["emit", "-q"], ndjson(&valid_lines));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut run = spawn_run(dir.path(), &["--exit-when-idle", "5s"], &log);
    wait_exit(&mut run, Duration::from_secs(120), &log);
    assert_stored_exactly(dir.path(), &w);
    let status = tollgate(dir.path(), &["status", "--json"]);
    let s: Value = serde_json::from_slice(&status.stdout).unwrap();
    let dups: u64 = s["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["duplicates"].as_u64().unwrap())
        .sum();
    assert_eq!(dups, valid_lines.len() as u64);
}

#[test]
fn two_instances_share_the_partitions_and_one_takes_over_after_a_kill() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("tollgate-pair-{}", nonce());
    cluster.create_topic(&topic, 4, 1).unwrap();
    cluster.create_topic(&format!("{topic}-dlq"), 1, 1).unwrap();
    config(dir.path(), &brokers, &topic, "");
    let w = workload(dir.path(), 8, 5_000, 43);
    let refs: Vec<&Vec<u8>> = w.lines.iter().collect();
    let out = tollgate_stdin(dir.path(), &["emit"], ndjson(&refs));
    assert!(out.status.success(), "{}", text(&out.stderr));

    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let mut a = spawn_run(dir.path(), &["--writer-id", "A"], &log_a);
    let mut b = spawn_run(
        dir.path(),
        &["--writer-id", "B", "--exit-when-idle", "8s"],
        &log_b,
    );
    // Both hold partitions before A dies mid-stream.
    wait_for_log(&log_a, "partitions assigned", Duration::from_secs(60));
    wait_for_log(&log_b, "partitions assigned", Duration::from_secs(60));
    wait_for_log(&log_a, "committed", Duration::from_secs(60));
    a.kill().unwrap();
    a.wait().unwrap();
    wait_exit(&mut b, Duration::from_secs(300), &log_b);
    let b_log = std::fs::read_to_string(&log_b).unwrap();
    assert!(
        b_log.contains("parts=[0, 1, 2, 3]"),
        "B never held all four partitions after A's death: {b_log}"
    );
    assert_stored_exactly(dir.path(), &w);
    let by_partition = writers(dir.path());
    assert!(
        by_partition
            .values()
            .any(|ws| ws.contains("A") && ws.contains("B")),
        "no partition was handed from A to B mid-chain: {by_partition:?}"
    );
}

/// A consumer group whose offsets point half-way into partitions that no
/// commit record covers yet (the storage emptied or moved, the group id
/// kept): `run` must store from each partition's log start, not from the
/// group's offset, and say so in the chain's first record.
#[test]
fn a_group_offset_ahead_of_an_empty_storage_loses_nothing() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("tollgate-ahead-{}", nonce());
    cluster.create_topic(&topic, 2, 1).unwrap();
    cluster.create_topic(&format!("{topic}-dlq"), 1, 1).unwrap();
    config(dir.path(), &brokers, &topic, "");
    let w = workload(dir.path(), 2, 1_500, 53);
    let refs: Vec<&Vec<u8>> = w.lines.iter().collect();
    let out = tollgate_stdin(dir.path(), &["emit"], ndjson(&refs));
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The group's offsets: half of each partition, as if consumed before.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("g-{topic}"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    for p in 0..2 {
        let (_, high) = consumer
            .fetch_watermarks(&topic, p, Duration::from_secs(10))
            .unwrap();
        assert!(high > 10, "partition {p} holds {high} records");
        offsets
            .add_partition_offset(&topic, p, Offset::Offset(high / 2))
            .unwrap();
    }
    consumer
        .commit(&offsets, rdkafka::consumer::CommitMode::Sync)
        .unwrap();
    drop(consumer);

    let log = dir.path().join("run.log");
    let mut run = spawn_run(dir.path(), &["--exit-when-idle", "5s"], &log);
    wait_exit(&mut run, Duration::from_secs(300), &log);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("storing from the partition's log start"),
        "{logged}"
    );
    // The summary names the time of each stage of the write path.
    let stages = logged
        .lines()
        .find_map(|l| l.split_once("time per stage: "))
        .map(|(_, r)| r.to_string())
        .unwrap_or_else(|| panic!("no time per stage: {logged}"));
    for stage in ["decode ", "redact ", "encode ", "hash ", "store "] {
        assert!(stages.contains(stage), "{stages}");
    }
    assert_stored_exactly(dir.path(), &w);
    for p in 0..2 {
        let first = dir.path().join(format!(
            "tollgate-data/commits/{topic}/p{p:05}/{:020}.json",
            1
        ));
        let record: Value = serde_json::from_slice(&std::fs::read(&first).unwrap()).unwrap();
        assert_eq!(
            (
                record["first_offset"].as_i64(),
                record["log_start"].as_i64()
            ),
            (Some(0), Some(0))
        );
    }
}

#[test]
fn a_thirty_second_broker_outage_is_waited_out() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("tollgate-outage-{}", nonce());
    cluster.create_topic(&topic, 2, 1).unwrap();
    cluster.create_topic(&format!("{topic}-dlq"), 1, 1).unwrap();
    config(dir.path(), &brokers, &topic, "");
    let w = workload(dir.path(), 4, 3_000, 47);
    let (first, second): (Vec<&Vec<u8>>, Vec<&Vec<u8>>) =
        w.lines
            .iter()
            .enumerate()
            .fold((vec![], vec![]), |(mut f, mut s), (i, l)| {
                if i < w.lines.len() / 2 {
                    f.push(l)
                } else {
                    s.push(l)
                }
                (f, s)
            });
    let out = tollgate_stdin(dir.path(), &["emit"], ndjson(&first));
    assert!(out.status.success(), "{}", text(&out.stderr));

    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let log = dir.path().join("run.log");
    let mut run = spawn_run(
        dir.path(),
        &["--exit-when-idle", "8s", "--metrics-addr", &addr],
        &log,
    );
    wait_for_log(&log, "committed", Duration::from_secs(60));
    cluster.broker_down(1).unwrap();
    let down = Instant::now();
    // The outage shows in the metrics while it lasts.
    let mut seen_down = false;
    while down.elapsed() < Duration::from_secs(30) {
        let (status, _, body) = http(&addr, "GET", "/metrics", b"");
        assert_eq!(status, 200);
        if body.contains("\ntollgate_kafka_broker_up 0\n") {
            seen_down = true;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(seen_down, "the metrics never showed the broker down");
    assert!(
        run.try_wait().unwrap().is_none(),
        "run gave up during the outage: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    cluster.broker_up(1).unwrap();
    let out = tollgate_stdin(dir.path(), &["emit"], ndjson(&second));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Back up: the gauge returns to 1 and the run drains everything.
    let start = Instant::now();
    loop {
        let (_, _, body) = http(&addr, "GET", "/metrics", b"");
        // The metric's line, not its HELP text ("... broker_up 1 while ...").
        if body.contains("\ntollgate_kafka_broker_up 1\n") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the broker never came back in the metrics"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_exit(&mut run, Duration::from_secs(300), &log);
    // The outage is in the log: librdkafka's "all brokers down" when a
    // client had a connection to lose (not every run: an idle client
    // reports nothing), else the probe's failure to read the watermarks.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("all brokers are down")
            || logged.contains("could not read the high watermarks"),
        "the outage is not in the log: {logged}"
    );
    assert_stored_exactly(dir.path(), &w);
}

#[test]
fn the_gateway_answers_202_400_and_429_and_what_it_accepted_is_stored() {
    let Some(brokers) = test_broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("tollgate-gw-{}", nonce());
    let port = free_port();
    config(
        dir.path(),
        &brokers,
        &topic,
        &format!(
            "[gateway]\nlisten = \"127.0.0.1:{port}\"\n[gateway.rate_limit]\nper_second = 1000\nburst = 1000\n[gateway.tenants.globex]\nper_second = 1\nburst = 3\n"
        ),
    );
    let w = workload(dir.path(), 2, 300, 53);
    // Valid v1 events (v0 ones name the tenant `org`).
    let valid: Vec<&Vec<u8>> = w
        .lines
        .iter()
        .filter(|l| {
            serde_json::from_slice::<Value>(l)
                .ok()
                .filter(|v| v["data"]["tenant"].is_string() && v["data"]["team"].is_string())
                .and_then(|v| v["id"].as_str().map(|id| w.valid.contains(id)))
                .unwrap_or(false)
        })
        .collect();
    let tenant = |l: &Vec<u8>| {
        serde_json::from_slice::<Value>(l).unwrap()["data"]["tenant"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let acme: Vec<&Vec<u8>> = valid
        .iter()
        .copied()
        .filter(|l| tenant(l) == "acme")
        .take(40)
        .collect();
    let globex: Vec<&Vec<u8>> = valid
        .iter()
        .copied()
        .filter(|l| tenant(l) == "globex")
        .take(4)
        .collect();
    assert_eq!((acme.len(), globex.len()), (40, 4));

    let log = dir.path().join("gateway.log");
    let mut gw = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("gateway")
        .env_remove("TOLLGATE_CONFIG")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for_log(&log, "listening on", Duration::from_secs(60));
    let addr = format!("127.0.0.1:{port}");
    let array = |ls: &[&Vec<u8>]| {
        let mut b = b"[".to_vec();
        for (i, l) in ls.iter().enumerate() {
            if i > 0 {
                b.push(b',');
            }
            b.extend_from_slice(l);
        }
        b.push(b']');
        b
    };

    // One event, then an array: 202 once the broker acknowledged.
    let (status, _, body) = http(&addr, "POST", "/v1/events", acme[0]);
    assert_eq!(status, 202, "{body}");
    let (status, _, body) = http(&addr, "POST", "/v1/events", &array(&acme[1..]));
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["accepted"],
        39
    );

    // A bad event in an array: 400 naming its index and field; nothing produced.
    let mut bad: Value = serde_json::from_slice(globex[0]).unwrap();
    bad["data"].as_object_mut().unwrap().remove("team");
    bad["id"] = Value::from("never-stored");
    let mut body_bytes = b"[".to_vec();
    body_bytes.extend_from_slice(globex[0]);
    body_bytes.push(b',');
    body_bytes.extend_from_slice(bad.to_string().as_bytes());
    body_bytes.push(b']');
    let (status, _, body) = http(&addr, "POST", "/v1/events", &body_bytes);
    assert_eq!(status, 400, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["refused"][0]["index"], 1);
    assert_eq!(v["refused"][0]["field"], "data.team");
    assert_eq!(v["refused"][0]["code"], "missing_field");
    let (status, _, body) = http(&addr, "POST", "/v1/events", b"{not json");
    assert_eq!(status, 400);
    assert!(body.contains("body: "), "{body}");

    // globex may send 3 at once, then 1 a second: the fourth is refused.
    let (status, _, body) = http(&addr, "POST", "/v1/events", &array(&globex[..3]));
    assert_eq!(status, 202, "{body}");
    let (status, head, body) = http(&addr, "POST", "/v1/events", globex[3]);
    assert_eq!(status, 429, "{body}");
    assert!(head.contains("retry-after:"), "{head}");
    assert!(body.contains("globex"), "{body}");
    // acme is not slowed down by globex's limit.
    let (status, _, _) = http(&addr, "POST", "/v1/events", acme[0]);
    assert_eq!(status, 202);

    let (_, _, metrics) = http(&addr, "GET", "/metrics", b"");
    assert!(
        metrics.contains("tollgate_http_events_accepted_total 44"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tollgate_http_responses_total{status=\"429\"} 1"),
        "{metrics}"
    );
    gw.kill().unwrap();
    gw.wait().unwrap();

    // What was acknowledged is stored once (acme[0] was sent twice).
    let log = dir.path().join("run.log");
    let mut run = spawn_run(dir.path(), &["--exit-when-idle", "5s"], &log);
    wait_exit(&mut run, Duration::from_secs(120), &log);
    let ids: BTreeSet<String> = column(&dir.path().join("tollgate-data"), "events", "event_id")
        .into_iter()
        .collect();
    let id = |l: &Vec<u8>| {
        serde_json::from_slice::<Value>(l).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let expected: BTreeSet<String> = acme.iter().chain(&globex[..3]).map(|l| id(l)).collect();
    assert_eq!(ids, expected);
}

#[test]
fn dead_letters_are_replayed_once_their_cause_is_fixed() {
    let Some(brokers) = test_broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("tollgate-dlq-{}", nonce());
    config(dir.path(), &brokers, &topic, "");
    // Events 50 days old: refused as too old under the default 45-day max_past.
    let old = (chrono::Utc::now() - chrono::Duration::days(50))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut lines = Vec::new();
    for i in 0..5 {
        lines.push(serde_json::json!({
            "specversion": "1.0", "id": format!("late-{i}"), "source": "https://backfill.example", "type": "dev.tollgate.tool_call.v1",
            "time": old, "data": {"tenant": "acme", "team": "search", "user": "u1", "environment": "prod",
            "mcp_server": "crm", "tool": "lookup", "phase": "start", "call_id": format!("c{i}"), "arguments": {"q": "x"}}
        }).to_string().into_bytes());
    }
    let refs: Vec<&Vec<u8>> = lines.iter().collect();
    let out = tollgate_stdin(dir.path(), &["emit"], ndjson(&refs));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = dir.path().join("run.log");
    let mut run = spawn_run(dir.path(), &["--exit-when-idle", "5s"], &log);
    wait_exit(&mut run, Duration::from_secs(120), &log);
    let root = dir.path().join("tollgate-data");
    assert_eq!(
        column(&root, "dead_letters", "reason_code"),
        vec!["too_old"; 5]
    );
    assert!(column(&root, "events", "event_id").is_empty());

    // Unfixed, a replay re-feeds nothing.
    let out = tollgate(dir.path(), &["dlq", "replay"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("0 replayed"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("5 x too_old"),
        "{}",
        text(&out.stdout)
    );

    // The fix: a longer max_past (and dedupe window). Replayed twice: the
    // second copy of each is dropped as a duplicate.
    let fixed = "\nmax_past = \"60days\"\ndedupe_window = \"60days\"\n";
    let cfg = std::fs::read_to_string(dir.path().join("tollgate.toml")).unwrap() + fixed;
    std::fs::write(dir.path().join("tollgate.toml"), cfg).unwrap();
    for _ in 0..2 {
        let out = tollgate(dir.path(), &["dlq", "replay"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("5 replayed"),
            "{}",
            text(&out.stdout)
        );
    }
    let mut run = spawn_run(dir.path(), &["--exit-when-idle", "5s"], &log);
    wait_exit(&mut run, Duration::from_secs(120), &log);
    let mut ids = column(&root, "events", "event_id");
    ids.sort();
    assert_eq!(ids, (0..5).map(|i| format!("late-{i}")).collect::<Vec<_>>());
    // The dead letters stay in the audit log; verify still passes.
    assert_eq!(column(&root, "dead_letters", "reason_code").len(), 5);
    let v = tollgate(dir.path(), &["verify"]);
    assert!(v.status.success(), "{}", text(&v.stderr));
}
