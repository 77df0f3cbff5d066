//! End-to-end ingest benchmark: `tollgate run` (decode, validate, dedupe,
//! redact, Parquet, commit records) against a bare rdkafka consumer that
//! reads and discards the same topic on the same broker, in the same run.
//!
//!     cargo bench --bench ingest                      # 2,000,000 events
//!     TOLLGATE_BENCH_EVENTS=500000 cargo bench --bench ingest
//!
//! The broker is `TOLLGATE_BENCH_KAFKA` (or `TOLLGATE_TEST_KAFKA`) if set,
//! else a `tansu` broker started on a free loopback port for the run (it
//! must be on PATH; `.ci/run` installs it). Prints both rates, their ratio
//! (goal: `tollgate run` at least 0.5x the bare consumer), the peak RSS
//! of `tollgate run` while it drains the backlog (goal: under 256 MB), and
//! the time `tollgate run` spent in each stage (decode, redact, encode,
//! hash, store), so that the next bottleneck shows.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tollgate_ingest::kafka::{client_config, ensure_topics, Emitter};
use tollgate_ingest::KafkaConfig;

const PARTITIONS: i32 = 3;

fn main() {
    let events: u32 = std::env::var("TOLLGATE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let (brokers, mut broker) = broker();
    let topic = format!(
        "bench-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    let mut kafka = KafkaConfig {
        brokers: brokers.clone(),
        raw_topic: topic.clone(),
        dead_letter_topic: format!("{topic}-dlq"),
        group_id: format!("{topic}-run"),
        partitions: PARTITIONS,
        ..KafkaConfig::default()
    };
    kafka
        .properties
        .insert("message.max.bytes".into(), "10000000".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(ensure_topics(&kafka)).unwrap();

    // The backlog: the fixture workload (5 teams, PII in tool-call
    // arguments, 0.5 % bad events), produced before either reader starts.
    let days = 35u32;
    let today = chrono::Utc::now().date_naive();
    let mut params = tollgate_fixtures::Params::ending_before(today);
    params.days = days;
    params.events_per_day = events.div_ceil(days);
    params.start = today - chrono::Duration::days(i64::from(days));
    let generator =
        tollgate_fixtures::Generator::new(params, tollgate_fixtures::demo_price_book().unwrap())
            .unwrap();
    let emitter = Emitter::new(&kafka, &topic).unwrap();
    let started = Instant::now();
    let mut bytes = 0u64;
    let summary = generator
        .run(|r| -> Result<(), tollgate_fixtures::Error> {
            bytes += r.bytes.len() as u64;
            emitter.send(&r.key, &r.bytes).unwrap();
            Ok(())
        })
        .unwrap();
    let d = emitter.flush(Duration::from_secs(600)).unwrap();
    assert_eq!(d.delivered, summary.records, "{d:?}");
    let total = summary.records;
    println!(
        "backlog: {total} events ({:.0} MB of JSON) on {PARTITIONS} partitions of {topic} at {brokers}, produced in {:.1} s",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let bare = bare_consumer(&kafka, &topic, total);
    println!(
        "bare rdkafka consumer (read and discard): {:.1} s, {:.0} events/s",
        bare.as_secs_f64(),
        total as f64 / bare.as_secs_f64()
    );

    let (elapsed, peak_rss_kb, stages) = tollgate_run(&kafka, total, false);
    let run_rate = total as f64 / elapsed.as_secs_f64();
    let bare_rate = total as f64 / bare.as_secs_f64();
    println!(
        "tollgate run, ingest alone (decode, dedupe, redact, Parquet zstd, commit records): {:.1} s, {:.0} events/s",
        elapsed.as_secs_f64(),
        run_rate
    );
    println!("tollgate run, {stages}");
    println!(
        "ratio tollgate run / bare consumer: {:.2}x (goal >= 0.50x: {})",
        run_rate / bare_rate,
        if run_rate / bare_rate >= 0.5 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "peak RSS of tollgate run draining {total} events: {:.0} MB (goal < 256 MB: {})",
        peak_rss_kb as f64 / 1024.0,
        if peak_rss_kb < 256 * 1024 {
            "met"
        } else {
            "NOT met"
        }
    );
    // The same with the rollups' maintenance in the process (what `run
    // --no-alerts` does by default; a deployment may run it apart).
    let (elapsed, peak_rss_kb, stages) = tollgate_run(&kafka, total, true);
    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "tollgate run with the rollups' refresh beside it: {:.1} s, {:.0} events/s, {:.2}x the bare consumer, peak RSS {:.0} MB; {stages}",
        elapsed.as_secs_f64(),
        rate,
        rate / bare_rate,
        peak_rss_kb as f64 / 1024.0
    );
    if let Some(b) = broker.as_mut() {
        let _ = b.kill();
        let _ = b.wait();
    }
}

/// The broker to use, and the tansu process started for it (if any).
fn broker() -> (String, Option<Child>) {
    for var in ["TOLLGATE_BENCH_KAFKA", "TOLLGATE_TEST_KAFKA"] {
        if let Ok(b) = std::env::var(var) {
            if !b.is_empty() {
                return (b, None);
            }
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new("tansu")
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("no TOLLGATE_BENCH_KAFKA given and no `tansu` on PATH to start a broker");
    let addr = format!("127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "tansu did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    (addr, Some(child))
}

/// Reads every partition from its start until `total` records were seen,
/// with librdkafka tuned for throughput; returns the time taken.
fn bare_consumer(kafka: &KafkaConfig, topic: &str, total: u64) -> Duration {
    let consumer: BaseConsumer = client_config(kafka)
        .set("group.id", format!("{topic}-bare"))
        .set("enable.auto.commit", "false")
        .set("fetch.min.bytes", "1048576")
        .set("fetch.wait.max.ms", "100")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.min.messages", "1000000")
        .set("queued.max.messages.kbytes", "1048576")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let started = Instant::now();
    let mut seen = 0u64;
    let mut sink = 0usize;
    while seen < total {
        match consumer.poll(Duration::from_secs(30)) {
            Some(Ok(m)) => {
                use rdkafka::Message;
                sink = sink.wrapping_add(m.payload().map_or(0, <[u8]>::len));
                seen += 1;
            }
            Some(Err(e)) => panic!("bare consumer: {e}"),
            None => panic!("bare consumer: no record for 30 s after {seen} of {total}"),
        }
    }
    std::hint::black_box(sink);
    started.elapsed()
}

/// Runs the release `tollgate run` on the topic (as a new consumer group,
/// into a new storage) until its commit records account for `total`
/// records; returns the time taken, the peak RSS (kB) and the time per
/// stage its summary line reports. `rollups` keeps the rollups'
/// maintenance in the process.
fn tollgate_run(kafka: &KafkaConfig, total: u64, rollups: bool) -> (Duration, u64, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = String::new();
    config.push_str(&format!(
        "[kafka]\nbrokers = \"{}\"\nraw_topic = \"{}\"\ndead_letter_topic = \"{}\"\ngroup_id = \"{}-{}\"\n",
        kafka.brokers, kafka.raw_topic, kafka.dead_letter_topic, kafka.group_id, if rollups { "rollups" } else { "alone" }
    ));
    // The events span 35 days: accept them all, as a backfill would.
    config.push_str("[ingest]\nmax_past = \"40days\"\ndedupe_window = \"40days\"\n");
    config.push_str(&format!("[ledger]\nrollups = {rollups}\n"));
    std::fs::write(dir.path().join("tollgate.toml"), config).unwrap();
    let started = Instant::now();
    // Without the alert evaluator (it reads the ledger after commits; a
    // deployment may run it apart).
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["run", "--no-alerts"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("run.log")).unwrap())
        .spawn()
        .unwrap();
    let mut peak = 0u64;
    let elapsed = loop {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(vm_hwm_kb(child.id()));
        if let Some(status) = child.try_wait().unwrap() {
            panic!("tollgate run exited early: {status}");
        }
        if committed(&dir.path().join("tollgate-data/commits")) >= total {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(3600),
            "tollgate run did not drain the backlog within an hour"
        );
    };
    peak = peak.max(vm_hwm_kb(child.id()));
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("run.log")).unwrap_or_default();
    let stages = log
        .lines()
        .find_map(|l| l.split_once("time per stage: "))
        .map_or_else(
            || "time per stage: not reported".to_string(),
            |(_, r)| format!("time per stage: {r}"),
        );
    (elapsed, peak, stages)
}

/// Records accounted for by commit records under `dir`.
fn committed(dir: &Path) -> u64 {
    let mut sum = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                    sum += v["records"].as_u64().unwrap_or(0);
                }
            }
        }
    }
    sum
}

/// The peak resident set size of a process, in kB (`VmHWM`).
fn vm_hwm_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}
