//! Prometheus metrics of the alerts stage (low-cardinality labels only:
//! kinds, outcomes and decisions, never team names or addresses).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::AlertKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabel {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabel {
    decision: &'static str,
}

/// The alerts stage's metrics.
#[derive(Clone)]
pub struct AlertMetrics {
    registry: Arc<Registry>,
    deliveries: Family<DeliveryLabel, Counter>,
    raised: Family<KindLabel, Counter>,
    decisions: Family<DecisionLabel, Counter>,
    pending: Gauge,
    cycles: Counter,
    cycle_errors: Counter,
}

impl Default for AlertMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl AlertMetrics {
    /// Creates and registers every metric under the `tollgate_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tollgate");
        let deliveries = Family::<DeliveryLabel, Counter>::default();
        let raised = Family::<KindLabel, Counter>::default();
        let decisions = Family::<DecisionLabel, Counter>::default();
        let pending = Gauge::default();
        let cycles = Counter::default();
        let cycle_errors = Counter::default();
        registry.register(
            "alert_emails",
            "Email delivery attempts by alert kind and outcome (sent, deferred for a retry, failed for good)",
            deliveries.clone(),
        );
        registry.register(
            "alerts_raised",
            "Alerts raised (claimed once) by kind",
            raised.clone(),
        );
        registry.register(
            "admission_decisions",
            "Admission API decisions (allow, deny)",
            decisions.clone(),
        );
        registry.register(
            "alert_emails_pending",
            "Emails claimed and not yet delivered",
            pending.clone(),
        );
        registry.register("alert_cycles", "Evaluation cycles run", cycles.clone());
        registry.register(
            "alert_cycle_errors",
            "Evaluation cycles that failed (the ledger or the state could not be read)",
            cycle_errors.clone(),
        );
        Self {
            registry: Arc::new(registry),
            deliveries,
            raised,
            decisions,
            pending,
            cycles,
            cycle_errors,
        }
    }

    pub(crate) fn delivered(&self, kind: AlertKind, outcome: &'static str) {
        self.deliveries
            .get_or_create(&DeliveryLabel {
                kind: kind.as_str(),
                outcome,
            })
            .inc();
    }

    pub(crate) fn raised(&self, kind: AlertKind) {
        self.raised
            .get_or_create(&KindLabel {
                kind: kind.as_str(),
            })
            .inc();
    }

    pub(crate) fn decision(&self, allow: bool) {
        self.decisions
            .get_or_create(&DecisionLabel {
                decision: if allow { "allow" } else { "deny" },
            })
            .inc();
    }

    pub(crate) fn cycle(&self, ok: bool, pending: usize) {
        self.cycles.inc();
        if !ok {
            self.cycle_errors.inc();
        }
        self.pending.set(pending as i64);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
