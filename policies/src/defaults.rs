//! The default policy set, compiled into the binary so cordon works with no configuration.
//! The same files live in `policies/rego/`, where a security team copies them from.

use std::path::PathBuf;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::LoadError;
use crate::source::PolicySource;

/// (file name, text) of every default policy and its tests.
pub const FILES: &[(&str, &str)] = &[
    ("files.rego", include_str!("../rego/files.rego")),
    ("files_test.rego", include_str!("../rego/files_test.rego")),
    ("git.rego", include_str!("../rego/git.rego")),
    ("git_test.rego", include_str!("../rego/git_test.rego")),
    ("network.rego", include_str!("../rego/network.rego")),
    (
        "network_test.rego",
        include_str!("../rego/network_test.rego"),
    ),
    ("secrets.rego", include_str!("../rego/secrets.rego")),
    (
        "secrets_test.rego",
        include_str!("../rego/secrets_test.rego"),
    ),
    ("tools.rego", include_str!("../rego/tools.rego")),
    ("tools_test.rego", include_str!("../rego/tools_test.rego")),
];

/// Constant tables the policies read (always-denied address ranges and names), kept as data so
/// they are built once at load rather than on every evaluation.
pub const DATA: &str = include_str!("../rego/data.json");

/// The default set as a [`PolicySource`] rooted at `<embedded>`.
pub fn source() -> Result<PolicySource, LoadError> {
    let mut hasher = Sha256::new();
    for (name, text) in FILES.iter().chain([&("data.json", DATA)]) {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
    }
    let data: Value = serde_json::from_str(DATA).map_err(|e| LoadError::Data {
        path: PathBuf::from("<embedded>/data.json"),
        why: e.to_string(),
    })?;
    Ok(PolicySource {
        root: PathBuf::from("<embedded>"),
        modules: FILES
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect(),
        data,
        wasm: None,
        digest: hex::encode(hasher.finalize()),
    })
}
