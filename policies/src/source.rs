//! Reading a policy directory: Rego modules, data documents, or an OPA-compiled Wasm bundle.
//!
//! The loader is strict on purpose. A data file that does not parse, two data files that
//! disagree on a key, or a directory that mixes Rego sources with a Wasm bundle is an error:
//! a half-understood policy set must never be the one that answers.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::LoadError;

/// A file larger than this is refused: a policy or data file is text a person writes.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// More files than this in one policy directory is refused.
pub const MAX_FILES: usize = 10_000;

/// What a policy directory (or file) holds, read but not compiled.
#[derive(Debug, Clone)]
pub struct PolicySource {
    /// Where it was read from.
    pub root: PathBuf,
    /// Rego modules: path relative to the root, and text.
    pub modules: Vec<(String, String)>,
    /// Data documents merged by directory, as OPA mounts them.
    pub data: Value,
    /// An OPA-compiled Wasm module with the bundle's data, when the source is a bundle.
    pub wasm: Option<WasmSource>,
    /// SHA-256 over every file read, in path order.
    pub digest: String,
}

/// An OPA-compiled policy: the module bytes and the data that came with it.
#[derive(Debug, Clone)]
pub struct WasmSource {
    /// The `policy.wasm` bytes.
    pub module: Vec<u8>,
    /// Where it came from (a `.wasm` file or a `.tar.gz` bundle).
    pub origin: PathBuf,
}

impl PolicySource {
    /// Read `path`: a directory of `.rego` and data files, a single `.rego` file, a bare
    /// `.wasm` module, or an `opa build` bundle (`.tar.gz`).
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let meta = fs::metadata(path).map_err(|e| LoadError::io(path, e))?;
        let mut hasher = Sha256::new();
        let mut src = PolicySource {
            root: path.to_owned(),
            modules: Vec::new(),
            data: Value::Object(Map::new()),
            wasm: None,
            digest: String::new(),
        };
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(path, path, &mut files)?;
            files.sort();
            for rel in files {
                let full = path.join(&rel);
                let bytes = read_bounded(&full)?;
                hasher.update(rel.as_bytes());
                hasher.update([0]);
                hasher.update(&bytes);
                src.add_file(&rel, &full, bytes)?;
            }
        } else {
            let bytes = read_bounded(path)?;
            hasher.update(&bytes);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            src.add_file(&name, path, bytes)?;
        }
        if src.wasm.is_some() && !src.modules.is_empty() {
            return Err(LoadError::Mixed(path.to_owned()));
        }
        if src.wasm.is_none() && src.modules.is_empty() {
            return Err(LoadError::Empty(path.to_owned()));
        }
        src.digest = hex::encode(hasher.finalize());
        Ok(src)
    }

    fn add_file(&mut self, rel: &str, full: &Path, bytes: Vec<u8>) -> Result<(), LoadError> {
        let lower = rel.to_ascii_lowercase();
        if lower.ends_with(".rego") {
            let text = String::from_utf8(bytes).map_err(|_| LoadError::NotUtf8(full.to_owned()))?;
            self.modules.push((rel.to_owned(), text));
        } else if lower.ends_with(".json") || lower.ends_with(".yaml") || lower.ends_with(".yml") {
            let doc: Value = if lower.ends_with(".json") {
                serde_json::from_slice(&bytes).map_err(|e| LoadError::Data {
                    path: full.to_owned(),
                    why: e.to_string(),
                })?
            } else {
                serde_yaml::from_slice(&bytes).map_err(|e| LoadError::Data {
                    path: full.to_owned(),
                    why: e.to_string(),
                })?
            };
            // OPA mounts a data file at the path of the directory it sits in.
            let mount: Vec<&str> = Path::new(rel)
                .parent()
                .map(|p| p.to_str().unwrap_or_default())
                .unwrap_or_default()
                .split('/')
                .filter(|s| !s.is_empty())
                .collect();
            let mut doc = doc;
            for key in mount.iter().rev() {
                doc = Value::Object(Map::from_iter([((*key).to_owned(), doc)]));
            }
            merge(&mut self.data, doc, &mut Vec::new()).map_err(|key| LoadError::DataConflict {
                path: full.to_owned(),
                key,
            })?;
        } else if lower.ends_with(".wasm") || lower.ends_with(".tar.gz") || lower.ends_with(".tgz")
        {
            if self.wasm.is_some() {
                return Err(LoadError::Mixed(full.to_owned()));
            }
            self.wasm = Some(read_wasm(full, &lower, bytes, &mut self.data)?);
        }
        // Anything else (README, .manifest outside a bundle) is not policy and is skipped.
        Ok(())
    }
}

#[cfg(feature = "opa-wasm")]
fn read_wasm(
    path: &Path,
    lower: &str,
    bytes: Vec<u8>,
    data: &mut Value,
) -> Result<WasmSource, LoadError> {
    if lower.ends_with(".wasm") {
        return Ok(WasmSource {
            module: bytes,
            origin: path.to_owned(),
        });
    }
    let (module, bundle_data) = crate::backend::wasm::unpack_bundle(path, &bytes)?;
    if let Some(d) = bundle_data {
        merge(data, d, &mut Vec::new()).map_err(|key| LoadError::DataConflict {
            path: path.to_owned(),
            key,
        })?;
    }
    Ok(WasmSource {
        module,
        origin: path.to_owned(),
    })
}

#[cfg(not(feature = "opa-wasm"))]
fn read_wasm(path: &Path, _: &str, _: Vec<u8>, _: &mut Value) -> Result<WasmSource, LoadError> {
    Err(LoadError::WasmDisabled(path.to_owned()))
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), LoadError> {
    let entries = fs::read_dir(dir).map_err(|e| LoadError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LoadError::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Hidden entries (.git, editor swap files, .manifest) are not policy.
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let ft = entry.file_type().map_err(|e| LoadError::io(&path, e))?;
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else if ft.is_file() || ft.is_symlink() && path.is_file() {
            let rel = path
                .strip_prefix(root)
                .map_err(|_| LoadError::io(&path, std::io::Error::other("outside the root")))?;
            let rel = rel
                .to_str()
                .ok_or_else(|| LoadError::NotUtf8(path.clone()))?
                .replace('\\', "/");
            out.push(rel);
            if out.len() > MAX_FILES {
                return Err(LoadError::TooMany(root.to_owned()));
            }
        }
    }
    Ok(())
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, LoadError> {
    let meta = fs::metadata(path).map_err(|e| LoadError::io(path, e))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge(path.to_owned()));
    }
    fs::read(path).map_err(|e| LoadError::io(path, e))
}

/// Deep-merge `from` into `into`. Objects merge key by key; any other collision is a conflict,
/// reported as the dotted key path.
pub(crate) fn merge(into: &mut Value, from: Value, at: &mut Vec<String>) -> Result<(), String> {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                at.push(k.clone());
                match a.get_mut(&k) {
                    Some(existing) => merge(existing, v, at)?,
                    None => {
                        a.insert(k, v);
                    }
                }
                at.pop();
            }
            Ok(())
        }
        (a, b) if *a == b => Ok(()),
        _ => Err(at.join(".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_is_deep_and_reports_conflicts() {
        let mut a = json!({"x": {"y": 1}});
        merge(&mut a, json!({"x": {"z": 2}}), &mut vec![]).unwrap();
        assert_eq!(a, json!({"x": {"y": 1, "z": 2}}));
        let err = merge(&mut a, json!({"x": {"y": 3}}), &mut vec![]).unwrap_err();
        assert_eq!(err, "x.y");
    }
}
