//! The proxy's metrics, in the Prometheus text format: requests and tunnels by result, policy
//! decisions by area and result, bytes each way, request latency, active tunnels, scan time.
//! Served on a loopback listener of their own (`[proxy] metrics`).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a request or tunnel count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// `request` or `tunnel`.
    pub kind: &'static str,
    /// `allowed`, `denied`, `blocked` (a secret or an unscannable body) or `error`.
    pub result: &'static str,
}

/// Labels of a decision count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// The policy area.
    pub area: String,
    /// `allow` or `deny`.
    pub result: &'static str,
}

/// Labels of a byte count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Direction {
    /// `up` (to the destination) or `down`.
    pub direction: &'static str,
}

/// Every metric the proxy keeps.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests and tunnels by kind and result.
    pub outcomes: Family<Outcome, Counter>,
    /// Policy decisions by area and result.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Bytes carried, by direction.
    pub bytes: Family<Direction, Counter>,
    /// Time from a request's arrival to the proxy's answer head.
    pub latency: Histogram,
    /// Tunnels open now.
    pub tunnels: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Time spent scanning one request.
    pub scan: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let outcomes = Family::<Outcome, Counter>::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        let bytes = Family::<Direction, Counter<u64, AtomicU64>>::default();
        let latency = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let scan = Histogram::new(exponential_buckets(0.00001, 2.0, 18));
        let tunnels = Gauge::default();
        let mut registry = Registry::with_prefix("cordon_proxy");
        registry.register(
            "requests",
            "Requests and tunnels by kind and result",
            outcomes.clone(),
        );
        registry.register(
            "decisions",
            "Policy decisions by area and result",
            decisions.clone(),
        );
        registry.register(
            "bytes",
            "Bytes carried to and from destinations",
            bytes.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to the answer's head",
            latency.clone(),
        );
        registry.register("active_tunnels", "Tunnels open now", tunnels.clone());
        registry.register(
            "scan_duration_seconds",
            "Time scanning one request for secrets",
            scan.clone(),
        );
        Metrics {
            registry,
            outcomes,
            decisions,
            bytes,
            latency,
            tunnels,
            scan,
        }
    }
}

impl Metrics {
    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Counts one request or tunnel.
    pub fn outcome(&self, kind: &'static str, result: &'static str) {
        self.outcomes.get_or_create(&Outcome { kind, result }).inc();
    }

    /// Counts bytes in one direction.
    pub fn carried(&self, direction: &'static str, n: u64) {
        self.bytes.get_or_create(&Direction { direction }).inc_by(n);
    }
}
