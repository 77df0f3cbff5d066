//! `tollgate gateway`: the HTTP gateway producers post events to.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::producer::Producer;
use tollgate_ingest::gateway::{router, Gateway};
use tollgate_ingest::kafka::{ensure_topics, producer, ObservedContext};
use tollgate_pipeline::metrics::Metrics;

use crate::cli::GatewayArgs;
use crate::config::Loaded;

pub fn run(loaded: Loaded, args: GatewayArgs) -> Result<ExitCode> {
    let config = loaded.config;
    let listen = args.listen.unwrap_or_else(|| config.gateway.listen.clone());
    let rt = crate::runtime()?;
    rt.block_on(async move {
        let metrics = Arc::new(Metrics::new());
        ensure_topics(&config.kafka).await?;
        let producer = producer(&config.kafka, ObservedContext::new(metrics.clone()))?;
        let gateway = Arc::new(Gateway::new(
            producer,
            &config.kafka.raw_topic,
            config.ingest.limits(),
            config.gateway.clone(),
            metrics.clone(),
        ));
        {
            let (gw, topic) = (gateway.clone(), config.kafka.raw_topic.clone());
            tollgate_ingest::kafka::spawn_broker_probe(
                move || {
                    gw.producer()
                        .client()
                        .fetch_metadata(Some(&topic), Duration::from_secs(5))
                        .map(|_| ())
                },
                metrics,
                Duration::from_secs(5),
            );
        }
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("listening on {listen} (gateway.listen)"))?;
        say!(
            "tollgate gateway: listening on http://{}/v1/events -> {} at {} (also /metrics, /healthz, /readyz); Ctrl-C or SIGTERM stops",
            listener.local_addr()?,
            config.kafka.raw_topic,
            config.kafka.brokers
        );
        let app = router(gateway.clone());
        tollgate_ingest::http_server::serve(listener, app, config.gateway.header_timeout, async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => return std::future::pending().await,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        })
        .await;
        let _ = gateway.producer().flush(Duration::from_secs(30));
        say!("tollgate gateway: stopped");
        Ok(ExitCode::SUCCESS)
    })
}
