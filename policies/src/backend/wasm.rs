//! The opa-wasm backend for OPA-compiled policies (`opa build -t wasm`).
//!
//! A Wasm instance has one linear memory and is not re-entrant, so evaluations take turns on a
//! mutex. Each evaluation gets a fixed fuel budget: a policy that loops is stopped and denies,
//! exactly as a regorus evaluation past its time limit does.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

use opa_wasm::wasmtime::{Config, Engine, Module, Store, Trap};
use opa_wasm::{DefaultContext, Policy as OpaPolicy, Runtime};
use serde_json::{Map, Value};

use super::{Backend, EvalFailure};
use crate::error::LoadError;

/// Unpacked bundles larger than this are refused (a gzip bomb is an error, not an OOM).
const MAX_BUNDLE_BYTES: u64 = 64 * 1024 * 1024;

struct Instance {
    store: Store<()>,
    policy: OpaPolicy<DefaultContext>,
}

/// A compiled OPA Wasm module, instantiated with its data.
pub(crate) struct WasmBackend {
    instance: Mutex<Instance>,
    entrypoints: BTreeSet<String>,
    fuel: u64,
}

impl fmt::Debug for WasmBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmBackend")
            .field("entrypoints", &self.entrypoints)
            .field("fuel", &self.fuel)
            .finish_non_exhaustive()
    }
}

impl WasmBackend {
    /// Compile `module` and load `data` into it. `fuel` bounds each evaluation.
    pub(crate) fn new(
        origin: &Path,
        module: &[u8],
        data: &Value,
        fuel: u64,
    ) -> Result<Self, LoadError> {
        let err = |why: String| LoadError::Wasm {
            path: origin.to_owned(),
            why,
        };
        let mut config = Config::new();
        config.consume_fuel(true);
        let engine = Engine::new(&config).map_err(|e| err(format!("engine: {e}")))?;
        let module =
            Module::new(&engine, module).map_err(|e| err(format!("not a Wasm module: {e}")))?;
        let mut store = Store::new(&engine, ());
        // Loading the data runs Wasm too; give it a generous, finite budget.
        store
            .set_fuel(fuel.saturating_mul(100))
            .map_err(|e| err(e.to_string()))?;
        let (policy, entrypoints) = pollster::block_on(async {
            let runtime = Runtime::new(&mut store, &module).await?;
            let entrypoints: BTreeSet<String> = runtime
                .entrypoints()
                .into_iter()
                .map(str::to_owned)
                .collect();
            let policy = runtime.with_data(&mut store, data).await?;
            Ok::<_, anyhow::Error>((policy, entrypoints))
        })
        .map_err(|e| err(format!("not an OPA policy module: {e:#}")))?;
        Ok(WasmBackend {
            instance: Mutex::new(Instance { store, policy }),
            entrypoints,
            fuel,
        })
    }

    /// Evaluate an entrypoint by its OPA name (`cordon/network/decision`, or `eval` for a
    /// module built from a single query).
    pub(crate) fn eval_entrypoint(
        &self,
        entrypoint: &str,
        input: &Value,
    ) -> Result<Option<Value>, EvalFailure> {
        if !self.entrypoints.contains(entrypoint) {
            return Err(EvalFailure::Error(format!(
                "module has no entrypoint {entrypoint:?}"
            )));
        }
        let mut guard = self
            .instance
            .lock()
            .map_err(|_| EvalFailure::Error("wasm instance poisoned by an earlier panic".into()))?;
        let Instance { store, policy } = &mut *guard;
        store
            .set_fuel(self.fuel)
            .map_err(|e| EvalFailure::Error(e.to_string()))?;
        let result: Result<Value, anyhow::Error> =
            pollster::block_on(policy.evaluate(&mut *store, entrypoint, input));
        match result {
            Ok(Value::Array(sets)) => match sets.into_iter().next() {
                None => Ok(None),
                Some(Value::Object(mut set)) => Ok(set.remove("result")),
                Some(other) => Err(EvalFailure::Error(format!("unexpected result set {other}"))),
            },
            Ok(other) => Err(EvalFailure::Error(format!("unexpected result {other}"))),
            Err(e) => {
                let out_of_fuel = e
                    .chain()
                    .any(|c| c.downcast_ref::<Trap>() == Some(&Trap::OutOfFuel));
                if out_of_fuel {
                    Err(EvalFailure::Timeout("evaluation ran out of fuel".into()))
                } else {
                    Err(EvalFailure::Error(format!("{e:#}")))
                }
            }
        }
    }
}

/// `data.cordon.network.decision` -> `cordon/network/decision`, OPA's entrypoint naming.
fn entrypoint_of(path: &str) -> String {
    path.strip_prefix("data.").unwrap_or(path).replace('.', "/")
}

impl Backend for WasmBackend {
    fn kind(&self) -> &'static str {
        "wasm"
    }

    fn has_rule(&self, path: &str) -> bool {
        self.entrypoints.contains(&entrypoint_of(path))
    }

    fn eval(&self, path: &str, input: &Value) -> Result<Option<Value>, EvalFailure> {
        self.eval_entrypoint(&entrypoint_of(path), input)
    }
}

/// Read an `opa build` bundle: its `policy.wasm` and its data documents, mounted by directory.
pub(crate) fn unpack_bundle(
    path: &Path,
    bytes: &[u8],
) -> Result<(Vec<u8>, Option<Value>), LoadError> {
    let err = |why: String| LoadError::Wasm {
        path: path.to_owned(),
        why,
    };
    let gz = flate2::read::GzDecoder::new(bytes);
    // One byte more than allowed, so that reaching it is detectable.
    let mut archive = tar::Archive::new(gz.take(MAX_BUNDLE_BYTES + 1));
    let mut module = None;
    let mut data: Option<Value> = None;
    let entries = archive
        .entries()
        .map_err(|e| err(format!("not a tar.gz bundle: {e}")))?;
    let too_large = || {
        err(format!(
            "bundle unpacks to more than {MAX_BUNDLE_BYTES} bytes"
        ))
    };
    for entry in entries {
        let mut entry = entry.map_err(|e| err(format!("corrupt bundle: {e}")))?;
        if entry.size() > MAX_BUNDLE_BYTES {
            return Err(too_large());
        }
        let name = entry
            .path()
            .map_err(|e| err(format!("corrupt bundle: {e}")))?
            .to_string_lossy()
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_owned();
        let mut content = Vec::new();
        entry
            .read_to_end(&mut content)
            .map_err(|e| err(format!("corrupt bundle: {e}")))?;
        if name == "policy.wasm" || name.ends_with("/policy.wasm") {
            if module.replace(content).is_some() {
                return Err(err("bundle holds more than one policy.wasm".into()));
            }
        } else if name == "data.json" || name.ends_with("/data.json") {
            let doc: Value = serde_json::from_slice(&content)
                .map_err(|e| err(format!("{name} does not parse: {e}")))?;
            let mut doc = doc;
            for key in name
                .trim_end_matches("data.json")
                .split('/')
                .rev()
                .filter(|s| !s.is_empty())
            {
                doc = Value::Object(Map::from_iter([(key.to_owned(), doc)]));
            }
            let into = data.get_or_insert_with(|| Value::Object(Map::new()));
            crate::source::merge(into, doc, &mut Vec::new())
                .map_err(|key| err(format!("{name} conflicts at key {key:?}")))?;
        }
    }
    // The cap may have cut the stream at an entry boundary, which tar reads as a clean end.
    if archive.into_inner().limit() == 0 {
        return Err(too_large());
    }
    let module = module.ok_or_else(|| {
        err("bundle has no policy.wasm (build it with `opa build -t wasm`)".into())
    })?;
    Ok((module, data))
}
