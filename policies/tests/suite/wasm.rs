//! The opa-wasm backend against the regorus backend on the same policy and data: OPA's own
//! compiler produced `decision.wasm` from `egress.rego` (see shared/fixtures/opa-wasm).

use std::io::Write;
use std::path::{Path, PathBuf};

use cordon_policy::input::ToolsInput;
use cordon_policy::{
    AreaInput, Context, Fallback, LoadError, LoadOptions, PolicyConfig, PolicySet,
};
use serde_json::{Value, json};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/opa-wasm")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

fn load(files: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, PolicySet) {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let set = PolicySet::load(
        dir.path(),
        &PolicyConfig::default(),
        &LoadOptions::default(),
    )
    .unwrap();
    (dir, set)
}

fn inputs() -> Vec<Value> {
    let mut hosts: Vec<String> = [
        "github.com",
        "raw.githubusercontent.com",
        "evil.example",
        "githubusercontent.com",
        "crates.io",
        "pypi.org",
        "registry.npmjs.org",
        "npmjs.org",
        "a.b.c.npmjs.org",
        "GITHUB.COM",
        "github.com.",
        "",
        "evilgithub.com",
        "crates.io.evil.example",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    hosts.extend((0..50).map(|i| format!("host{i}.example.org")));
    let mut out: Vec<Value> = hosts.into_iter().map(|h| json!({"host": h})).collect();
    out.push(json!({}));
    out.push(json!({"host": 42}));
    out.push(json!({"host": ["github.com"]}));
    out
}

/// A tar.gz as `opa build` writes it: entry names are absolute (`/policy.wasm`), which the tar
/// crate's path setter refuses, so the name bytes are written into the header directly.
fn bundle(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (name, bytes) in entries {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append(&header, *bytes).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn assert_equivalent(wasm: &PolicySet, rego: &PolicySet) {
    let mut compared = 0;
    for input in inputs() {
        let w = wasm.eval_rule("eval", &input);
        let r = rego.eval_rule("data.sandbox.egress.decision", &input);
        match (w, r) {
            (Ok(w), Ok(r)) => assert_eq!(w, r, "backends disagree on {input}"),
            // Both refuse ill-typed input (each engine words its error its own way); at the
            // decision layer both are the same deny.
            (Err(_), Err(_)) => assert!(!input["host"].is_string(), "{input} failed on both"),
            (w, r) => panic!("only one backend failed on {input}: wasm {w:?}, rego {r:?}"),
        }
        compared += 1;
    }
    assert!(compared > 60);
}

#[test]
fn wasm_and_rego_backends_agree_on_the_fixture() {
    let data = fixture("data.json");
    let (_w, wasm) = load(&[
        ("policy.wasm", fixture("decision.wasm")),
        ("data.json", data.clone()),
    ]);
    let (_r, rego) = load(&[("egress.rego", fixture("egress.rego")), ("data.json", data)]);
    assert_eq!(wasm.backend_kind(), "wasm");
    assert_eq!(rego.backend_kind(), "rego");
    assert_equivalent(&wasm, &rego);

    // The fixture's documented expectations.
    let eval = |host: &str| {
        wasm.eval_rule("eval", &json!({"host": host}))
            .unwrap()
            .unwrap()
    };
    assert_eq!(eval("github.com"), json!({"allow": true, "reasons": []}));
    assert_eq!(eval("raw.githubusercontent.com")["allow"], json!(true));
    assert_eq!(
        eval("evil.example"),
        json!({"allow": false, "reasons": ["host evil.example not in allowlist"]})
    );
    assert_eq!(eval("githubusercontent.com")["allow"], json!(false));
}

#[test]
fn opa_bundle_tarball_loads_with_its_data() {
    let wasm = fixture("decision.wasm");
    let data = fixture("data.json");
    let tgz = bundle(&[
        ("/policy.wasm", &wasm),
        ("/data.json", &data),
        ("/.manifest", b"{}"),
    ]);
    let (_w, from_bundle) = load(&[("bundle.tar.gz", tgz)]);
    let (_r, rego) = load(&[("egress.rego", fixture("egress.rego")), ("data.json", data)]);
    assert_equivalent(&from_bundle, &rego);
}

#[test]
fn wasm_set_without_cordon_entrypoints_denies_areas() {
    let (_w, wasm) = load(&[
        ("policy.wasm", fixture("decision.wasm")),
        ("data.json", fixture("data.json")),
    ]);
    let input = AreaInput::Tools(ToolsInput {
        tool: "exec".into(),
        arguments: json!({}),
    });
    let d = wasm.decide(&Context::default(), &input);
    assert!(!d.allow);
    assert_eq!(d.fallback, Some(Fallback::MissingPackage));
    assert!(d.policy.starts_with("wasm:"));
}

#[test]
fn bad_bundles_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let load_err = |name: &str, bytes: Vec<u8>| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err =
            PolicySet::load(&path, &PolicyConfig::default(), &LoadOptions::default()).unwrap_err();
        assert!(matches!(err, LoadError::Wasm { .. }), "{err}");
        err.to_string()
    };
    assert!(load_err("x.wasm", b"\0asm garbage".to_vec()).contains("not a Wasm module"));
    assert!(load_err("x.tar.gz", b"not gzip".to_vec()).contains("bundle"));
    assert!(load_err("nomod.tar.gz", bundle(&[("/data.json", b"{}")])).contains("no policy.wasm"));

    // A bundle that unpacks past the limit (64 MiB) is an error, not an allocation.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut tar = tar::Builder::new(&mut gz);
    let mut header = tar::Header::new_gnu();
    let size: u64 = 80 * 1024 * 1024;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(
        &mut header,
        "policy.wasm",
        std::io::repeat(0).take_bytes(size),
    )
    .unwrap();
    tar.into_inner().unwrap();
    gz.flush().unwrap();
    let bomb = gz.finish().unwrap();
    assert!(
        bomb.len() < 1024 * 1024,
        "the bomb should be small: {}",
        bomb.len()
    );
    assert!(load_err("bomb.tar.gz", bomb).contains("more than"));
}

trait TakeBytes: std::io::Read + Sized {
    fn take_bytes(self, n: u64) -> std::io::Take<Self> {
        std::io::Read::take(self, n)
    }
}
impl<R: std::io::Read> TakeBytes for R {}
