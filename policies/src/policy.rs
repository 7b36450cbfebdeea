//! The loaded policy set and the live handle that every decision point asks.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use lru::LruCache;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::area::Area;
use crate::backend::rego::RegoBackend;
use crate::backend::{Backend, EvalFailure};
use crate::config::PolicyConfig;
use crate::decision::{Decision, Fallback};
use crate::error::LoadError;
use crate::input::{AreaInput, Context};
use crate::source::{PolicySource, merge};
use crate::testing::{self, TestReport};

/// How a policy set is loaded and evaluated.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Wall-clock limit of one Rego evaluation. Past it, the decision is a deny.
    pub eval_timeout: Duration,
    /// Fuel (roughly, Wasm instructions) for one Wasm evaluation.
    pub wasm_fuel: u64,
    /// Refuse a set whose own `test_*` rules fail.
    pub require_tests_pass: bool,
    /// Decisions remembered per set (0: none). Evaluation is a pure function of input and
    /// data (the engine is built without time, random or network builtins), so a repeated
    /// input gets the same answer without running the policy; a new set starts empty.
    pub decision_cache: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            eval_timeout: Duration::from_millis(100),
            wasm_fuel: 200_000_000,
            require_tests_pass: true,
            decision_cache: 4096,
        }
    }
}

/// An evaluation that produced no decision value, for callers that evaluate arbitrary rules.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The evaluation ran past its limit.
    #[error("policy evaluation exceeded its limit: {0}")]
    Timeout(String),
    /// The engine failed.
    #[error("policy evaluation failed: {0}")]
    Failed(String),
}

impl From<EvalFailure> for EvalError {
    fn from(f: EvalFailure) -> Self {
        match f {
            EvalFailure::Timeout(m) => EvalError::Timeout(m),
            EvalFailure::Error(m) => EvalError::Failed(m),
        }
    }
}

/// One immutable, compiled set of policies and data. Swapped whole, never edited; its answers
/// never change (the verdict cache only remembers them).
pub struct PolicySet {
    backend: Box<dyn Backend>,
    rego: Option<(RegoBackend, Vec<(String, String)>)>,
    id: String,
    tests: TestReport,
    cache: Option<Mutex<LruCache<(Area, String), Decision>>>,
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field("id", &self.id)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

fn new_cache(size: usize) -> Option<Mutex<LruCache<(Area, String), Decision>>> {
    NonZeroUsize::new(size).map(|n| Mutex::new(LruCache::new(n)))
}

impl PolicySet {
    /// Read, compile and (unless disabled) test the policies at `path`, with `config` exposed
    /// as `data.cordon.config`.
    pub fn load(path: &Path, config: &PolicyConfig, opts: &LoadOptions) -> Result<Self, LoadError> {
        let source = PolicySource::read(path)?;
        Self::from_source(source, config, opts)
    }

    /// Compile an already-read source.
    pub fn from_source(
        source: PolicySource,
        config: &PolicyConfig,
        opts: &LoadOptions,
    ) -> Result<Self, LoadError> {
        let config_data = config.to_data()?;
        if source.data.pointer("/cordon/config").is_some() {
            return Err(LoadError::DataConflict {
                path: source.root.clone(),
                key: "cordon.config (data.cordon.config is reserved for cordon.toml)".into(),
            });
        }
        let mut data = source.data.clone();
        merge(
            &mut data,
            json!({"cordon": {"config": config_data}}),
            &mut Vec::new(),
        )
        .map_err(|key| LoadError::DataConflict {
            path: source.root.clone(),
            key: format!("{key} (data.cordon.config is reserved for cordon.toml)"),
        })?;
        let mut hasher = Sha256::new();
        hasher.update(source.digest.as_bytes());
        hasher.update(serde_json::to_vec(&data).unwrap_or_default());
        let digest = hex::encode(hasher.finalize());
        let short = digest.get(..12).unwrap_or(&digest);

        if let Some(wasm) = &source.wasm {
            return Self::wasm(wasm, &data, short, opts);
        }
        let backend = RegoBackend::new(&source.modules, &data, opts.eval_timeout)?;
        let tests = testing::run(&backend, &source.modules);
        if opts.require_tests_pass && tests.failed() > 0 {
            let failing = tests.failing();
            return Err(LoadError::TestsFailed {
                failed: failing.len(),
                total: tests.cases.len(),
                names: failing.into_iter().take(10).collect::<Vec<_>>().join(", "),
            });
        }
        Ok(PolicySet {
            backend: Box::new(backend.clone()),
            rego: Some((backend, source.modules)),
            id: format!("rego:{short}"),
            tests,
            cache: new_cache(opts.decision_cache),
        })
    }

    #[cfg(feature = "opa-wasm")]
    fn wasm(
        wasm: &crate::source::WasmSource,
        data: &Value,
        short: &str,
        opts: &LoadOptions,
    ) -> Result<Self, LoadError> {
        let backend = crate::backend::wasm::WasmBackend::new(
            &wasm.origin,
            &wasm.module,
            data,
            opts.wasm_fuel,
        )?;
        Ok(PolicySet {
            backend: Box::new(backend),
            rego: None,
            id: format!("wasm:{short}"),
            tests: TestReport::default(),
            cache: new_cache(opts.decision_cache),
        })
    }

    #[cfg(not(feature = "opa-wasm"))]
    fn wasm(
        wasm: &crate::source::WasmSource,
        _: &Value,
        _: &str,
        _: &LoadOptions,
    ) -> Result<Self, LoadError> {
        Err(LoadError::WasmDisabled(wasm.origin.clone()))
    }

    /// How many decisions the verdict cache holds now (for metrics).
    pub fn cached_decisions(&self) -> usize {
        self.cache
            .as_ref()
            .and_then(|c| c.lock().ok().map(|c| c.len()))
            .unwrap_or(0)
    }

    /// `<backend>:<first 12 hex digits of the SHA-256 of every file and the config data>`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The engine: `rego` or `wasm`.
    pub fn backend_kind(&self) -> &'static str {
        self.backend.kind()
    }

    /// The outcome of the set's `test_*` rules when it was loaded.
    pub fn tests(&self) -> &TestReport {
        &self.tests
    }

    /// Run the set's `test_*` rules again (Rego sources only; a Wasm bundle carries none).
    pub fn run_tests(&self) -> TestReport {
        match &self.rego {
            Some((backend, modules)) => testing::run(backend, modules),
            None => TestReport::default(),
        }
    }

    /// Decide `input` for its area. Never fails: every failure is a deny that says why.
    pub fn decide(&self, ctx: &Context, input: &AreaInput) -> Decision {
        match self.prepared(ctx, input) {
            Ok(value) => self.decide_value(input.area(), &value),
            Err(denied) => denied,
        }
    }

    /// The decision if it needs no evaluation: a verdict-cache hit, or an input refused before
    /// the policy sees it. `None`: [`PolicySet::decide`] would evaluate.
    pub fn decide_cached(&self, ctx: &Context, input: &AreaInput) -> Option<Decision> {
        let value = match self.prepared(ctx, input) {
            Ok(v) => v,
            Err(denied) => return Some(denied),
        };
        let cache = self.cache.as_ref()?;
        let key = (input.area(), value.to_string());
        cache.lock().ok().and_then(|mut c| c.get(&key).cloned())
    }

    /// The input as the policy sees it, or the deny for an input it must not see.
    fn prepared(&self, ctx: &Context, input: &AreaInput) -> Result<Value, Decision> {
        let mut input = input.clone();
        input
            .normalise()
            .and_then(|()| input.to_value(ctx))
            .map_err(|e| {
                Decision::fallback(
                    input.area(),
                    Fallback::BadInput,
                    format!("denied: {e}"),
                    &self.id,
                )
            })
    }

    /// Decide an input already in JSON form (normalised by the caller).
    pub fn decide_value(&self, area: Area, input: &Value) -> Decision {
        let Some(cache) = &self.cache else {
            return self.evaluate(area, input);
        };
        // serde_json objects are key-sorted, so equal inputs serialise equally.
        let key = (area, input.to_string());
        if let Some(hit) = cache.lock().ok().and_then(|mut c| c.get(&key).cloned()) {
            return hit;
        }
        let decision = self.evaluate(area, input);
        // Only the policy's own answers: a timeout may be the machine's load, not the input.
        if decision.fallback.is_none()
            && let Ok(mut c) = cache.lock()
        {
            c.put(key, decision.clone());
        }
        decision
    }

    fn evaluate(&self, area: Area, input: &Value) -> Decision {
        let path = area.rule_path();
        if !self.backend.has_rule(&path) {
            return Decision::fallback(
                area,
                Fallback::MissingPackage,
                format!("denied: the policy set has no {path} rule"),
                &self.id,
            );
        }
        match self.backend.eval(&path, input) {
            Ok(Some(v)) => Decision::from_value(area, v, &self.id),
            Ok(None) => Decision::fallback(
                area,
                Fallback::Undefined,
                format!("denied: {path} is undefined for this input"),
                &self.id,
            ),
            Err(EvalFailure::Timeout(m)) => Decision::fallback(
                area,
                Fallback::Timeout,
                format!("denied: policy evaluation exceeded its limit ({m})"),
                &self.id,
            ),
            Err(EvalFailure::Error(m)) => Decision::fallback(
                area,
                Fallback::EvalError,
                format!("denied: policy evaluation failed: {m}"),
                &self.id,
            ),
        }
    }

    /// Evaluate any rule (Rego path such as `data.x.y`, or a Wasm entrypoint such as `eval`).
    /// `Ok(None)` is undefined. For tools and tests; decision points use [`PolicySet::decide`].
    pub fn eval_rule(&self, rule: &str, input: &Value) -> Result<Option<Value>, EvalError> {
        Ok(self.backend.eval(rule, input)?)
    }
}

/// The live policy: what the proxy, the sandbox and the MCP server ask. Reads never block and
/// never see a half-loaded set; a reload replaces the whole set in one atomic swap.
#[derive(Debug, Default)]
pub struct Policy {
    current: ArcSwapOption<PolicySet>,
}

impl Policy {
    /// A handle with no set loaded: every decision denies with `no_policy`.
    pub fn empty() -> Self {
        Policy::default()
    }

    /// A handle answering with `set`.
    pub fn new(set: PolicySet) -> Self {
        Policy {
            current: ArcSwapOption::from_pointee(set),
        }
    }

    /// Replace the set; returns the previous one.
    pub fn swap(&self, set: PolicySet) -> Option<Arc<PolicySet>> {
        self.current.swap(Some(Arc::new(set)))
    }

    /// The set answering now.
    pub fn current(&self) -> Option<Arc<PolicySet>> {
        self.current.load_full()
    }

    /// The decision for `input` if it needs no evaluation (a verdict-cache hit, or an input
    /// refused before evaluation), in about a microsecond; `None` when [`Policy::decide`] must
    /// evaluate. Async callers answer most decisions this way without leaving their thread.
    pub fn decide_cached(&self, ctx: &Context, input: &AreaInput) -> Option<Decision> {
        let guard = self.current.load();
        guard.as_deref()?.decide_cached(ctx, input)
    }

    /// Decide `input`. Never fails: every failure is a deny that says why.
    pub fn decide(&self, ctx: &Context, input: &AreaInput) -> Decision {
        let start = Instant::now();
        let guard = self.current.load();
        let decision = match guard.as_deref() {
            Some(set) => set.decide(ctx, input),
            None => Decision::fallback(
                input.area(),
                Fallback::NoPolicy,
                "denied: no policy is loaded",
                "none",
            ),
        };
        tracing::debug!(
            area = %input.area(),
            allow = decision.allow,
            policy = %decision.policy,
            elapsed_us = start.elapsed().as_micros() as u64,
            "policy decision"
        );
        decision
    }
}

/// Where a policy set comes from: a path, or the defaults compiled into cordon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyLocation {
    /// The default set ([`crate::defaults`]).
    Embedded,
    /// A directory, `.rego` file, `.wasm` module or bundle.
    Path(std::path::PathBuf),
}

impl PolicyLocation {
    /// Read the source.
    pub fn read(&self) -> Result<PolicySource, LoadError> {
        match self {
            PolicyLocation::Embedded => crate::defaults::source(),
            PolicyLocation::Path(p) => PolicySource::read(p),
        }
    }

    /// Load and compile.
    pub fn load(&self, config: &PolicyConfig, opts: &LoadOptions) -> Result<PolicySet, LoadError> {
        PolicySet::from_source(self.read()?, config, opts)
    }
}

impl std::fmt::Display for PolicyLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyLocation::Embedded => f.write_str("<embedded defaults>"),
            PolicyLocation::Path(p) => write!(f, "{}", p.display()),
        }
    }
}
