//! `cordon scan`: find secrets in files, directories and stdin.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use cordon_secrets::{Finding, Scanner};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Ctx;
use crate::config::Config;
use crate::output;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScanFormat {
    Text,
    Json,
    Sarif,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories to scan (directories respect .gitignore); `-` for stdin. Default: `.`.
    paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    format: ScanFormat,
    /// A gitleaks-format rule file (with `[extend] useDefault = true` to keep the built-in rules).
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// Ignore findings listed in this file (the JSON output of an earlier scan).
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Print the secrets themselves (text format only; never in JSON or SARIF).
    #[arg(long)]
    reveal: bool,
    /// Also look for the value of this environment variable (an operator's real token),
    /// verbatim and in its common encodings. Repeatable; adds to `[scan] exact_env`.
    #[arg(long = "exact-env", value_name = "NAME")]
    exact_env: Vec<String>,
    /// Also look inside encodings: base64, percent, JSON escapes, quoted-printable, gzip and
    /// deflate, nested up to four layers. A file that cannot be fully decoded (a decompression
    /// bomb) is reported, and the scan exits 2 unless it found secrets.
    #[arg(long)]
    decode: bool,
}

/// One finding as reported: where, which rule, never the value.
#[derive(Debug, Serialize, Deserialize)]
struct Reported {
    path: String,
    line: u64,
    start: u64,
    end: u64,
    rule: String,
    description: String,
    fingerprint: String,
    entropy: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    decoders: Vec<String>,
    #[serde(skip)]
    secret: Option<String>,
}

impl ScanArgs {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let config = ctx.config()?;
        let key = fingerprint_key(&config)?;
        let mut builder = Scanner::builder().fingerprint_key(&key).reveal(self.reveal);
        builder = match self.rules.as_ref().or(config.scan.rules.as_ref()) {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read rule file {}", path.display()))?;
                builder
                    .with_rules_toml(&text)
                    .with_context(|| format!("invalid rule file {}", path.display()))?
            }
            None => builder.with_defaults()?,
        };
        for name in config.scan.exact_env.iter().chain(&self.exact_env) {
            let value = std::env::var_os(name).with_context(|| {
                format!("--exact-env {name}: the environment variable is not set")
            })?;
            builder = builder
                .exact_secret(name, value.as_encoded_bytes())
                .with_context(|| format!("--exact-env {name}"))?;
        }
        let scanner = builder.build()?;
        let mut progress = Progress::new();
        let baseline = match &self.baseline {
            Some(p) => load_baseline(p)?,
            None => BTreeSet::new(),
        };
        let max_bytes = config.scan.max_file_mib.saturating_mul(1024 * 1024);
        let paths = if self.paths.is_empty() {
            vec![PathBuf::from(".")]
        } else {
            self.paths.clone()
        };
        let mut found: Vec<Reported> = Vec::new();
        let mut skipped = 0usize;
        let mut files = 0usize;
        let mut undecodable = 0usize;
        let mut how = How {
            decode: self.decode,
            undecodable: &mut undecodable,
        };
        for p in &paths {
            if p.as_os_str() == "-" {
                let mut input = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut input)
                    .context("cannot read stdin")?;
                files += 1;
                collect(&scanner, &input, "-", None, &mut how, &mut found);
                continue;
            }
            if !p.exists() {
                bail!("{} does not exist", p.display());
            }
            for entry in ignore::WalkBuilder::new(p)
                .hidden(false)
                .require_git(false)
                .build()
            {
                let entry = entry.with_context(|| format!("cannot walk {}", p.display()))?;
                if !entry.file_type().is_some_and(|t| t.is_file())
                    || entry.path().components().any(|c| c.as_os_str() == ".git")
                {
                    continue;
                }
                let path = entry.path();
                match scan_file(&scanner, path, max_bytes, &mut how, &mut found)? {
                    true => files += 1,
                    false => skipped += 1,
                }
                progress.tick(files, found.len());
            }
        }
        progress.clear();
        found.retain(|f| !baseline.contains(&(f.rule.clone(), f.fingerprint.clone())));
        match self.format {
            ScanFormat::Text => {
                for f in &found {
                    let value = f
                        .secret
                        .as_deref()
                        .map(|s| format!(" {s}"))
                        .unwrap_or_default();
                    output::line(&format!(
                        "{}:{}: {} ({}) fingerprint {}{value}",
                        f.path, f.line, f.rule, f.description, f.fingerprint
                    ));
                }
                output::info(&format!(
                    "{} finding(s) in {files} file(s){}",
                    found.len(),
                    if skipped > 0 {
                        format!(", {skipped} skipped (binary or over [scan] max_file_mib)")
                    } else {
                        String::new()
                    }
                ));
            }
            ScanFormat::Json => output::line(&serde_json::to_string_pretty(&found)?),
            ScanFormat::Sarif => {
                output::line(&serde_json::to_string_pretty(&sarif(&scanner, &found))?)
            }
        }
        Ok(if found.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

/// Scan one file; false if it was skipped (binary or too large).
/// Whether to decode, and how many inputs could not be.
struct How<'a> {
    decode: bool,
    undecodable: &'a mut usize,
}

fn scan_file(
    scanner: &Scanner,
    path: &Path,
    max_bytes: u64,
    how: &mut How<'_>,
    found: &mut Vec<Reported>,
) -> Result<bool> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() > max_bytes {
        return Ok(false);
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    // A NUL in the first 8 KiB: binary, as git and ripgrep judge it.
    if bytes.iter().take(8192).any(|&b| b == 0) {
        return Ok(false);
    }
    let shown = path
        .strip_prefix("./")
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned();
    collect(scanner, &bytes, &shown, Some(&shown), how, found);
    Ok(true)
}

fn collect(
    scanner: &Scanner,
    input: &[u8],
    shown: &str,
    path: Option<&str>,
    how: &mut How<'_>,
    found: &mut Vec<Reported>,
) {
    let findings = if how.decode {
        match scanner.scan_decoded_path(input, path, cordon_secrets::DecodeLimits::default()) {
            Ok(f) => f,
            Err(e) => {
                output::warn(&format!("{shown}: {e}"));
                *how.undecodable += 1;
                scanner.scan_path(input, path)
            }
        }
    } else {
        scanner.scan_path(input, path)
    };
    for f in findings {
        found.push(report(scanner, shown, f));
    }
}

fn report(scanner: &Scanner, path: &str, f: Finding) -> Reported {
    let description = scanner
        .rules()
        .iter()
        .find(|r| r.id == f.rule)
        .map(|r| r.description.clone())
        .unwrap_or_default();
    Reported {
        path: path.to_owned(),
        line: f.line,
        start: f.start,
        end: f.end,
        rule: f.rule,
        description,
        fingerprint: f.fingerprint,
        entropy: (f.entropy * 100.0).round() / 100.0,
        decoders: f.decoders,
        secret: f.secret,
    }
}

fn load_baseline(path: &Path) -> Result<BTreeSet<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read baseline {}", path.display()))?;
    let items: Vec<Reported> = serde_json::from_str(&text).with_context(|| {
        format!(
            "baseline {} is not the JSON output of `cordon scan --format json`",
            path.display()
        )
    })?;
    Ok(items.into_iter().map(|f| (f.rule, f.fingerprint)).collect())
}

/// SARIF 2.1.0, as code-scanning tools expect: one run, the rules that fired, one result per
/// finding with a region and a stable partial fingerprint.
fn sarif(scanner: &Scanner, found: &[Reported]) -> Value {
    let fired: BTreeSet<&str> = found.iter().map(|f| f.rule.as_str()).collect();
    let rules: Vec<Value> = scanner
        .rules()
        .iter()
        .filter(|r| fired.contains(r.id.as_str()))
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.id,
                "shortDescription": {"text": r.description},
                "defaultConfiguration": {"level": "error"},
            })
        })
        .collect();
    let results: Vec<Value> = found
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.rule,
                "level": "error",
                "message": {"text": format!("{}: {} (fingerprint {})", f.rule, f.description, f.fingerprint)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.path},
                        "region": {"startLine": f.line, "byteOffset": f.start, "byteLength": f.end - f.start},
                    }
                }],
                "partialFingerprints": {"cordonSecretFingerprint/v1": f.fingerprint},
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "cordon", "version": env!("CARGO_PKG_VERSION"), "rules": rules}},
            "results": results,
        }],
    })
}

/// The fingerprint key: `[scan] fingerprint_key_file`, else a per-user key created on first use
/// (32 random bytes, mode 0600). Stable across runs so baselines keep matching.
fn fingerprint_key(config: &Config) -> Result<Vec<u8>> {
    let path = match &config.scan.fingerprint_key_file {
        Some(p) => p.clone(),
        None => config.state_dir()?.join("fingerprint.key"),
    };
    if let Ok(key) = std::fs::read(&path) {
        if key.len() < 16 {
            bail!(
                "fingerprint key {} is shorter than 16 bytes",
                path.display()
            );
        }
        return Ok(key);
    }
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut key = vec![0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .context("cannot read /dev/urandom")?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create fingerprint key {}", path.display()))?;
    file.write_all(&key)?;
    Ok(key)
}

/// A one-line progress report on stderr, only when stderr is a terminal (never in a pipe, a
/// log or CI), refreshed at most five times a second.
struct Progress {
    on: bool,
    last: std::time::Instant,
    shown: bool,
}

impl Progress {
    fn new() -> Self {
        Progress {
            on: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            last: std::time::Instant::now(),
            shown: false,
        }
    }

    fn tick(&mut self, files: usize, findings: usize) {
        if self.on && self.last.elapsed() >= std::time::Duration::from_millis(200) {
            output::progress(&format!("scanning: {files} files, {findings} findings"));
            self.last = std::time::Instant::now();
            self.shown = true;
        }
    }

    fn clear(&mut self) {
        if self.shown {
            output::progress("");
        }
    }
}
