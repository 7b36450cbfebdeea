//! Where the proxy asks policy and writes the audit log. Evaluation and the audit writer are
//! synchronous (a decision takes microseconds to a few milliseconds, an fsynced record about
//! half a millisecond), so both run on tokio's blocking pool, off the connection tasks.

use std::net::IpAddr;
use std::sync::Arc;

use cordon_audit::{AuditLog, DecisionRecord, Event, Finding as AuditFinding, Kind};
use cordon_policy::input::{Channel, FindingInput, NetworkInput, Phase, SecretsInput};
use cordon_policy::{Area, AreaInput, Context, Decision, Policy};

use crate::scan::Found;

/// Policy and audit for one proxy.
#[derive(Debug, Clone)]
pub struct Gate {
    policy: Arc<Policy>,
    audit: Option<Arc<AuditLog>>,
    ctx: Context,
    report: Vec<Area>,
    /// Evaluations at once. The policy's time limit is wall-clock: a thousand evaluations
    /// sharing two cores would each take long enough to hit it and deny (fail closed, but
    /// wrongly). With one evaluation per core, load queues instead.
    slots: Arc<tokio::sync::Semaphore>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Gate {
    /// Decisions from `policy`, records to `audit` (none: records are dropped, for tests of the
    /// decision path only; the binary always passes a log).
    pub fn new(policy: Arc<Policy>, audit: Option<Arc<AuditLog>>, sandbox: Option<String>) -> Gate {
        Gate {
            policy,
            audit,
            ctx: Context {
                sandbox,
                actor: Some("proxy".into()),
            },
            report: Vec::new(),
            slots: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 16)),
            )),
            metrics: Arc::new(crate::metrics::Metrics::default()),
        }
    }

    /// The proxy's metrics (decisions are counted here).
    pub fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        Arc::clone(&self.metrics)
    }

    fn counted(&self, area: Area, d: Decision) -> Decision {
        let result = if d.allow { "allow" } else { "deny" };
        self.metrics
            .decisions
            .get_or_create(&crate::metrics::DecisionLabels {
                area: area.to_string(),
                result,
            })
            .inc();
        d
    }

    /// Report mode for `areas`: a deny there is recorded as `would_deny` and the request goes
    /// on, for rolling out a new policy. Every other area still decides.
    pub fn report(mut self, areas: &[Area]) -> Gate {
        self.report = areas.to_vec();
        self
    }

    /// Turns a deny into a recorded allow in report mode.
    fn reported(&self, area: Area, mut d: Decision) -> Decision {
        let denies = !d.allow
            || d.action
                .is_some_and(|a| a != cordon_policy::SecretAction::Allow);
        if !denies || !self.report.contains(&area) {
            return d;
        }
        tracing::warn!(area = %area, reasons = ?d.reasons, "report mode: would deny");
        d.allow = true;
        d.action = d.action.map(|_| cordon_policy::SecretAction::Allow);
        d.extras
            .insert("would_deny".into(), serde_json::Value::Bool(true));
        d
    }

    async fn decide(&self, input: AreaInput) -> Decision {
        let area = input.area();
        // Most decisions come from the verdict cache in about a microsecond: answered here,
        // on this task, with no thread involved.
        if let Some(d) = self.policy.decide_cached(&self.ctx, &input) {
            return self.counted(area, self.reported(area, d));
        }
        // An evaluation takes up to a few milliseconds. On the multi-threaded runtime,
        // block_in_place runs it here and hands this worker's other tasks to another thread.
        let multi = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        // The semaphore is never closed, so acquiring only waits.
        let _slot = self.slots.acquire().await;
        if multi {
            let d = tokio::task::block_in_place(|| self.policy.decide(&self.ctx, &input));
            return self.counted(area, self.reported(area, d));
        }
        let (policy, ctx) = (Arc::clone(&self.policy), self.ctx.clone());
        match tokio::task::spawn_blocking(move || policy.decide(&ctx, &input)).await {
            Ok(d) => self.counted(area, self.reported(area, d)),
            // A panicked evaluation is a failed one: deny.
            Err(_) => Decision::fallback(
                area,
                cordon_policy::Fallback::EvalError,
                "policy evaluation did not complete",
                "none",
            ),
        }
    }

    /// The `network` decision for `host:port` at `phase`.
    pub async fn network(
        &self,
        phase: Phase,
        host: &str,
        port: u16,
        ips: &[IpAddr],
        request: Option<RequestInfo>,
    ) -> Decision {
        let mut input = NetworkInput::connect(host, port, ips.to_vec());
        input.phase = phase;
        if let Some(r) = request {
            input.scheme = Some(r.scheme);
            input.method = Some(r.method);
            input.path = Some(r.path);
            input.headers = r.headers;
        }
        self.decide(AreaInput::Network(input)).await
    }

    /// The `git` decision for one ref update of a push to `remote`.
    pub async fn push(&self, remote: &str, update: &crate::pack::RefUpdate) -> Decision {
        let input = cordon_policy::input::GitInput {
            operation: cordon_policy::input::GitOp::Push,
            branch: update.name.clone(),
            remote: Some(remote.to_owned()),
            // Deleting a ref rewrites history as much as a force push does. Whether an update
            // is a fast-forward needs the object graph, which the proxy does not have.
            force: update.deletes(),
            changed_paths: Vec::new(),
            range: None,
        };
        self.decide(AreaInput::Git(input)).await
    }

    /// The `secrets` decision for findings in a request to `destination`.
    pub async fn secrets(&self, destination: &str, found: &[Found]) -> Decision {
        let input = SecretsInput {
            channel: Channel::Egress,
            destination: destination.to_owned(),
            findings: found
                .iter()
                .map(|f| FindingInput {
                    rule: f.rule.clone(),
                    fingerprint: f.fingerprint.clone(),
                    location: Some(f.location.clone()),
                    entropy: Some(f.entropy),
                })
                .collect(),
        };
        self.decide(AreaInput::Secrets(input)).await
    }

    /// Writes `event`; an error means the operation must not go ahead (or, after the fact, is
    /// logged loudly).
    pub async fn record(&self, event: Event) -> Result<(), String> {
        let Some(log) = &self.audit else {
            return Ok(());
        };
        let event = event.actor("proxy");
        let event = match &self.ctx.sandbox {
            Some(s) => event.sandbox(s.clone()),
            None => event,
        };
        log.append_async(event)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// What the request phase adds to a network decision.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// `http`.
    pub scheme: String,
    /// Upper-case method.
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Header names lower-case; repeated values joined with ", ". Values of credential headers
    /// are never passed: policy sees that they are present, not what they hold.
    pub headers: std::collections::BTreeMap<String, String>,
}

/// Puts a policy decision on an audit event.
pub trait Decided {
    /// The event with `d` as its decision, and `would_deny` when report mode let a deny through.
    fn decided(self, d: &Decision) -> Event;
}

impl Decided for Event {
    fn decided(self, d: &Decision) -> Event {
        let event = self.decision(DecisionRecord {
            allow: d.allow,
            reasons: d.reasons.clone(),
            policy: d.policy.clone(),
        });
        if d.extras.get("would_deny") == Some(&serde_json::Value::Bool(true)) {
            event.detail("would_deny", serde_json::Value::Bool(true))
        } else {
            event
        }
    }
}

/// The audit form of findings: rule id and fingerprint only.
pub fn audit_findings(found: &[Found]) -> Vec<AuditFinding> {
    found
        .iter()
        .filter_map(|f| AuditFinding::checked(&f.rule, &f.fingerprint))
        .collect()
}

/// An egress event for `target`.
pub fn egress(action: &str, target: &str) -> Event {
    Event::new(Kind::Egress, action).target(target)
}
