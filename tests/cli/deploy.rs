//! deploy/: every Kubernetes manifest, the compose file and the Dockerfile
//! parse, and the names and ports they reference exist: Services select a
//! Deployment's pods and target a port its container declares, probes ask
//! a declared port for a path the binary serves, volumes name the
//! ConfigMap, Secret and claims that are there, the HPA scales the ingest
//! Deployment on the lag metric the binary exports; each container's
//! arguments are a command the binary accepts, the configuration they
//! mount passes `tollgate config check` (with the Secret's files in place)
//! and listens on the ports declared. No Docker or cluster is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{text, tollgate};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Every YAML document of a file, as JSON values.
fn documents(path: &Path) -> Vec<Value> {
    let raw = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&raw)
        .map(|d| {
            let mut v = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(d)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // `<<: *anchor` merge keys, as compose resolves them.
            v.apply_merge().unwrap();
            serde_json::to_value(v).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The port of a `host:port` listen address.
fn port_of(addr: &str) -> u64 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// The value at a dotted path of a TOML config.
fn toml_str(cfg: &toml::Value, path: &str) -> Option<String> {
    let mut v = cfg;
    for k in path.split('.') {
        v = v.get(k)?;
    }
    match v {
        toml::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The arguments are a command the binary accepts: `<args> --help` succeeds
/// (after the global `--log-format` option).
fn assert_command(args: &[String], what: &str) {
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    if a.first() == Some(&"--log-format") {
        assert!(["json", "text"].contains(&a[1]), "{what}: {a:?}");
        a.drain(..2);
    }
    let sub: Vec<&str> = a
        .iter()
        .copied()
        .take_while(|x| !x.starts_with('-'))
        .collect();
    let mut help = sub.clone();
    help.push("--help");
    let dir = tempfile::tempdir().unwrap();
    let out = tollgate(dir.path(), &help);
    assert!(
        out.status.success() && !sub.is_empty(),
        "{what}: `tollgate {}` is not a command: {}",
        sub.join(" "),
        text(&out.stderr)
    );
    // Every flag it passes is one the command documents.
    let usage = text(&out.stdout);
    for flag in a.iter().filter(|x| x.starts_with("--")) {
        assert!(
            usage.contains(flag),
            "{what}: {flag} is not an option of {sub:?}"
        );
    }
}

/// Checks a config file with `tollgate config check`, with files under
/// `/run/secrets/tollgate/` taken from `secrets` (name -> content).
fn config_check(toml_text: &str, secrets: &BTreeMap<String, String>, what: &str) -> toml::Value {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in secrets {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let local = toml_text.replace(
        "/run/secrets/tollgate/",
        &format!("{}/", dir.path().display()),
    );
    std::fs::write(dir.path().join("tollgate.toml"), &local).unwrap();
    let out = tollgate(
        dir.path(),
        &["--config", "tollgate.toml", "config", "check"],
    );
    assert!(
        out.status.success(),
        "{what}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    toml::from_str(toml_text).unwrap()
}

/// A Deployment's pod labels and its containers' ports by name.
type Pods = (BTreeMap<String, String>, BTreeMap<String, u64>);

/// The paths the binary's HTTP listeners serve without credentials.
const SERVED: &[&str] = &["/healthz", "/readyz", "/metrics"];

#[test]
fn kubernetes_manifests_reference_what_exists() {
    let dir = deploy().join("k8s");
    let kustomization = documents(&dir.join("kustomization.yaml"));
    let listed: BTreeSet<String> = kustomization[0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, on_disk, "kustomization.yaml lists every manifest");

    let mut by_kind: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for f in &listed {
        for doc in documents(&dir.join(f)) {
            let kind = doc["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{f}: no kind"))
                .to_string();
            assert!(doc["apiVersion"].is_string(), "{f}: no apiVersion");
            let name = doc["metadata"]["name"].as_str().unwrap().to_string();
            let dup = by_kind
                .entry(kind.clone())
                .or_default()
                .insert(name.clone(), doc);
            assert!(dup.is_none(), "{kind}/{name} twice");
        }
    }
    let get = |kind: &str, name: &str| -> &Value {
        by_kind
            .get(kind)
            .and_then(|m| m.get(name))
            .unwrap_or_else(|| panic!("{kind}/{name} is referenced but not defined"))
    };
    let configmap = get("ConfigMap", "tollgate-config");
    let secret = get("Secret", "tollgate-secrets");
    let secret_files: BTreeMap<String, String> = secret["stringData"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let cfg = config_check(
        configmap["data"]["tollgate.toml"].as_str().unwrap(),
        &secret_files,
        "ConfigMap tollgate-config",
    );
    // Every file under /run/secrets/tollgate the config names is a Secret key.
    let cfg_text = configmap["data"]["tollgate.toml"].as_str().unwrap();
    for part in cfg_text.split("/run/secrets/tollgate/").skip(1) {
        let name: String = part.chars().take_while(|c| *c != '"').collect();
        assert!(
            secret_files.contains_key(&name),
            "secret file {name} not in tollgate-secrets"
        );
    }
    let listen_ports: BTreeMap<&str, u64> = [
        ("serve", port_of(&toml_str(&cfg, "server.listen").unwrap())),
        (
            "gateway",
            port_of(&toml_str(&cfg, "gateway.listen").unwrap()),
        ),
        (
            "run",
            port_of(&toml_str(&cfg, "ingest.metrics_addr").unwrap()),
        ),
    ]
    .into_iter()
    .collect();

    let mut pod_labels: BTreeMap<String, Pods> = BTreeMap::new();
    for (name, d) in by_kind.get("Deployment").unwrap() {
        let spec = &d["spec"];
        let labels: BTreeMap<String, String> =
            serde_json::from_value(spec["template"]["metadata"]["labels"].clone()).unwrap();
        let selector: BTreeMap<String, String> =
            serde_json::from_value(spec["selector"]["matchLabels"].clone()).unwrap();
        for (k, v) in &selector {
            assert_eq!(
                labels.get(k),
                Some(v),
                "{name}: selector {k} does not match its pods"
            );
        }
        let pod = &spec["template"]["spec"];
        let volumes: BTreeMap<String, &Value> = pod["volumes"]
            .as_array()
            .map(|vs| {
                vs.iter()
                    .map(|v| (v["name"].as_str().unwrap().to_string(), v))
                    .collect()
            })
            .unwrap_or_default();
        for v in volumes.values() {
            if let Some(cm) = v["configMap"]["name"].as_str() {
                let data = &get("ConfigMap", cm)["data"];
                for item in v["configMap"]["items"].as_array().into_iter().flatten() {
                    assert!(
                        data.get(item["key"].as_str().unwrap()).is_some(),
                        "{name}: {cm} has no {}",
                        item["key"]
                    );
                }
            }
            if let Some(s) = v["secret"]["secretName"].as_str() {
                let data = &get("Secret", s)["stringData"];
                for item in v["secret"]["items"].as_array().into_iter().flatten() {
                    assert!(
                        data.get(item["key"].as_str().unwrap()).is_some(),
                        "{name}: {s} has no {}",
                        item["key"]
                    );
                }
            }
            if let Some(c) = v["persistentVolumeClaim"]["claimName"].as_str() {
                get("PersistentVolumeClaim", c);
            }
        }
        let mut ports = BTreeMap::new();
        for c in pod["containers"].as_array().unwrap() {
            let cname = c["name"].as_str().unwrap();
            let what = format!("Deployment {name} container {cname}");
            for p in c["ports"].as_array().into_iter().flatten() {
                ports.insert(
                    p["name"].as_str().unwrap().to_string(),
                    p["containerPort"].as_u64().unwrap(),
                );
            }
            for m in c["volumeMounts"].as_array().into_iter().flatten() {
                let v = m["name"].as_str().unwrap();
                assert!(
                    volumes.contains_key(v),
                    "{what}: mounts undefined volume {v}"
                );
            }
            let config_mount = c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["mountPath"] == "/etc/tollgate");
            assert!(
                config_mount.is_some(),
                "{what}: the config is not mounted where the image reads it"
            );
            for probe in ["readinessProbe", "livenessProbe"] {
                let h = &c[probe]["httpGet"];
                if h.is_null() {
                    continue;
                }
                let port = h["port"].as_str().unwrap();
                assert!(
                    ports.contains_key(port),
                    "{what}: {probe} port {port} is not declared"
                );
                assert!(
                    SERVED.contains(&h["path"].as_str().unwrap()),
                    "{what}: {probe} path"
                );
            }
            let args: Vec<String> = serde_json::from_value(c["args"].clone()).unwrap();
            assert_command(&args, &what);
            // The port the command listens on is the one declared.
            let sub = args
                .iter()
                .find(|a| !a.starts_with('-') && *a != "json")
                .unwrap();
            let declared: Vec<u64> = ports.values().copied().collect();
            let listens = match args.iter().position(|a| a == "--listen") {
                Some(i) => port_of(&args[i + 1]),
                None => listen_ports[sub.as_str()],
            };
            assert!(
                declared.contains(&listens),
                "{what}: listens on {listens}, declares {declared:?}"
            );
        }
        pod_labels.insert(name.clone(), (labels, ports));
    }

    for (name, s) in by_kind.get("Service").unwrap() {
        let selector: BTreeMap<String, String> =
            serde_json::from_value(s["spec"]["selector"].clone()).unwrap();
        let targets: Vec<&Pods> = pod_labels
            .values()
            .filter(|(labels, _)| selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
            .collect();
        assert_eq!(
            targets.len(),
            1,
            "Service {name} selects {} Deployments",
            targets.len()
        );
        for p in s["spec"]["ports"].as_array().unwrap() {
            let t = &p["targetPort"];
            let ok = match t {
                Value::String(n) => targets[0].1.contains_key(n),
                Value::Number(n) => targets[0].1.values().any(|v| Some(*v) == n.as_u64()),
                _ => false,
            };
            assert!(
                ok,
                "Service {name}: targetPort {t} is not a port of its pods"
            );
        }
    }

    let hpa = get("HorizontalPodAutoscaler", "tollgate-ingest");
    let spec = &hpa["spec"];
    assert_eq!(spec["scaleTargetRef"]["kind"], "Deployment");
    let target = spec["scaleTargetRef"]["name"].as_str().unwrap();
    let ingest = get("Deployment", target);
    let args = ingest["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains("\"run\""),
        "the HPA scales {target}, which is not `tollgate run`"
    );
    assert_eq!(
        (spec["minReplicas"].as_u64(), spec["maxReplicas"].as_u64()),
        (Some(2), Some(15))
    );
    assert_eq!(
        spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        300
    );
    let metric = &spec["metrics"][0];
    assert_eq!(metric["type"], "External");
    let external = metric["external"]["metric"]["name"].as_str().unwrap();
    // The adapter serves that external metric from a series the binary exports.
    let rules = get("ConfigMap", "tollgate-prometheus-adapter-rules")["data"]["config.yaml"]
        .as_str()
        .unwrap();
    let rules: Value = serde_yaml_ng::from_str(rules).unwrap();
    let rule = rules["externalRules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"]["as"] == external)
        .unwrap_or_else(|| panic!("no adapter rule serves {external}"));
    let series = rule["seriesQuery"].as_str().unwrap();
    let series = series.split('{').next().unwrap().trim_matches('\'');
    let m = tollgate_pipeline::metrics::Metrics::new();
    m.lag
        .get_or_create(&tollgate_pipeline::metrics::Metrics::partition(0))
        .set(1);
    let exported = m.render();
    assert!(
        exported.contains(&format!("# TYPE {series} ")),
        "the adapter reads {series}, which tollgate run does not export"
    );
    // At most one ingest replica per partition gets work.
    let partitions: u64 = toml_str(&cfg, "kafka.partitions").unwrap().parse().unwrap();
    assert!(partitions >= spec["maxReplicas"].as_u64().unwrap());
}

#[test]
fn compose_file_and_dockerfile_reference_what_exists() {
    let dir = deploy().join("compose");
    let compose = &documents(&dir.join("compose.yaml"))[0];
    let services = compose["services"].as_object().unwrap();
    for needed in ["kafka", "smtp", "run", "serve", "gateway"] {
        assert!(
            services.contains_key(needed),
            "compose has no {needed} service"
        );
    }
    assert_eq!(
        services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"], "broker,controller",
        "Kafka in KRaft mode"
    );
    let volumes: BTreeSet<&String> = compose["volumes"].as_object().unwrap().keys().collect();
    let exposed = |svc: &Value| -> BTreeSet<u64> {
        let mut out = BTreeSet::new();
        for p in svc["expose"].as_array().into_iter().flatten() {
            out.insert(p.as_str().unwrap().parse().unwrap());
        }
        for p in svc["ports"].as_array().into_iter().flatten() {
            out.insert(port_of(p.as_str().unwrap()));
        }
        out
    };
    let dockerfile_text = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    let mut cfg_seen = None;
    for (name, svc) in services {
        for dep in svc["depends_on"]
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .or_else(|| {
                svc["depends_on"]
                    .as_array()
                    .map(|a| a.iter().map(|d| d.as_str().unwrap().to_string()).collect())
            })
            .unwrap_or_default()
        {
            assert!(
                services.contains_key(&dep),
                "{name} depends on undefined {dep}"
            );
        }
        if svc["image"] != "tollgate:dev" {
            continue;
        }
        let build = &svc["build"];
        let context = dir.join(build["context"].as_str().unwrap());
        assert!(
            context.join("Cargo.toml").exists(),
            "{name}: build context is not the repository"
        );
        assert!(
            context.join(build["dockerfile"].as_str().unwrap()).exists(),
            "{name}: no Dockerfile"
        );
        let mut mounted_cfg = None;
        for v in svc["volumes"].as_array().unwrap() {
            let v = v.as_str().unwrap();
            let (src, dst) = v.split_once(':').unwrap();
            let dst = dst.split(':').next().unwrap();
            if src.starts_with("./") {
                assert!(dir.join(src).exists(), "{name}: mounts missing {src}");
                if dst == "/etc/tollgate/tollgate.toml" {
                    mounted_cfg = Some(dir.join(src));
                }
            } else {
                assert!(
                    volumes.contains(&src.to_string()),
                    "{name}: undefined volume {src}"
                );
            }
        }
        let cfg_path = mounted_cfg.unwrap_or_else(|| panic!("{name}: no config mounted"));
        assert!(dockerfile_text.contains("TOLLGATE_CONFIG=/etc/tollgate/tollgate.toml"));
        let cfg_text = std::fs::read_to_string(&cfg_path).unwrap();
        let cfg = config_check(&cfg_text, &BTreeMap::new(), &format!("compose {name}"));
        let args: Vec<String> = serde_json::from_value(svc["command"].clone()).unwrap();
        assert_command(&args, &format!("compose service {name}"));
        // The config reaches the broker and SMTP server by service name and port.
        for addr in toml_str(&cfg, "kafka.brokers").unwrap().split(',') {
            let (host, port) = addr.rsplit_once(':').unwrap();
            let svc = services
                .get(host)
                .unwrap_or_else(|| panic!("broker {host} is not a service"));
            assert!(
                exposed(svc).contains(&port.parse().unwrap()),
                "{host} does not expose {port}"
            );
        }
        let smtp_host = toml_str(&cfg, "alerts.smtp.host").unwrap();
        let smtp = services
            .get(&smtp_host)
            .unwrap_or_else(|| panic!("SMTP host {smtp_host} is not a service"));
        assert!(
            exposed(smtp).contains(&toml_str(&cfg, "alerts.smtp.port").unwrap().parse().unwrap())
        );
        // What a long-running service listens on is what it publishes.
        let sub = args
            .iter()
            .find(|a| !a.starts_with('-') && *a != "json")
            .unwrap();
        let listen = match sub.as_str() {
            "serve" => toml_str(&cfg, "server.listen"),
            "gateway" => toml_str(&cfg, "gateway.listen"),
            "run" => toml_str(&cfg, "ingest.metrics_addr"),
            _ => None,
        };
        if let Some(l) = listen {
            assert!(
                exposed(svc).contains(&port_of(&l)),
                "{name} listens on {l} but does not publish it"
            );
            assert!(
                l.starts_with("0.0.0.0:"),
                "{name}: {l} is not reachable from outside the container"
            );
            assert!(
                dockerfile_text.contains(&port_of(&l).to_string()),
                "the Dockerfile does not EXPOSE {l}"
            );
        }
        cfg_seen = Some(cfg_path);
    }
    assert!(cfg_seen.is_some());

    // The Dockerfile: multi-stage, the runtime copies the binary the build
    // stage made, and runs it.
    let stages: Vec<&str> = dockerfile_text
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .filter_map(|l| l.split(" AS ").nth(1))
        .collect();
    assert!(stages.len() >= 2, "not a multi-stage build: {stages:?}");
    let copy = dockerfile_text
        .lines()
        .find(|l| l.starts_with("COPY --from="))
        .expect("the runtime stage copies from the build stage");
    let from = copy
        .trim_start_matches("COPY --from=")
        .split_whitespace()
        .next()
        .unwrap();
    assert!(stages.contains(&from), "COPY --from={from} names no stage");
    let dest = copy.split_whitespace().last().unwrap();
    assert!(
        dockerfile_text.contains(&format!("ENTRYPOINT [\"{dest}\"]")),
        "the entrypoint is not the copied binary"
    );
    assert!(dockerfile_text.contains("--bin tollgate"));
}
