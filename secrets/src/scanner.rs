//! The scanning engine: keyword prefilter, windowed rule regexes, entropy, allowlists.

use std::collections::HashSet;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::RuleError;
use crate::gitleaks::{self, RuleFile};
use crate::rule::{Allowlist, Rule, shannon_entropy};

/// The rules built into cordon (gitleaks format, written from the public token formats).
pub const DEFAULT_RULES: &str = include_str!("../rules/default.toml");

/// One secret found.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The rule that matched.
    pub rule: String,
    /// Byte offset of the secret in the input.
    pub start: u64,
    /// Byte offset just past the secret.
    pub end: u64,
    /// 1-based line of `start`.
    pub line: u64,
    /// Shannon entropy of the secret, bits per byte.
    pub entropy: f64,
    /// Keyed, irreversible fingerprint of the secret (16 hex digits): the same secret always
    /// has the same fingerprint under one key, and the key makes guessing it by hashing
    /// candidates useless.
    pub fingerprint: String,
    /// The decoders the secret was found through, outermost first (empty: in the clear).
    pub decoders: Vec<String>,
    /// The secret itself, only when the scanner was built with `reveal(true)`.
    pub secret: Option<String>,
}

/// Builds a [`Scanner`] from rule files.
#[derive(Debug, Clone)]
pub struct ScannerBuilder {
    rules: Vec<Rule>,
    allowlists: Vec<(Vec<String>, Allowlist)>,
    key: Vec<u8>,
    reveal: bool,
}

impl Default for ScannerBuilder {
    fn default() -> Self {
        ScannerBuilder {
            rules: Vec::new(),
            allowlists: Vec::new(),
            key: b"cordon-default-fingerprint-key".to_vec(),
            reveal: false,
        }
    }
}

impl ScannerBuilder {
    /// Add cordon's built-in rules.
    pub fn with_defaults(mut self) -> Result<Self, RuleError> {
        let file = gitleaks::parse(DEFAULT_RULES)?;
        self.merge(file);
        Ok(self)
    }

    /// Add a gitleaks-format rule file. `[extend] useDefault = true` adds the built-in rules
    /// first; a rule with the id of an existing one replaces it; `disabledRules` removes rules.
    pub fn with_rules_toml(mut self, text: &str) -> Result<Self, RuleError> {
        let file = gitleaks::parse(text)?;
        if file.use_default && self.rules.is_empty() {
            self.merge(gitleaks::parse(DEFAULT_RULES)?);
        }
        self.merge(file);
        Ok(self)
    }

    fn merge(&mut self, file: RuleFile) {
        for rule in file.rules {
            match self.rules.iter_mut().find(|r| r.id == rule.id) {
                Some(existing) => *existing = rule,
                None => self.rules.push(rule),
            }
        }
        self.rules.retain(|r| !file.disabled.contains(&r.id));
        self.allowlists.extend(file.allowlists);
    }

    /// Also look for `value` itself (an operator's real token, named `name` in findings'
    /// descriptions), verbatim and in its common encodings. Refused below 8 bytes.
    pub fn exact_secret(mut self, name: &str, value: &[u8]) -> Result<Self, RuleError> {
        self.rules.push(crate::exact::rule(name, value)?);
        Ok(self)
    }

    /// The key for fingerprints. Keep it stable (a baseline matches by fingerprint) and secret
    /// (with the key, a guessed secret can be confirmed).
    pub fn fingerprint_key(mut self, key: &[u8]) -> Self {
        self.key = key.to_vec();
        self
    }

    /// Put the secret itself in each finding (for a person at a terminal; never for logs).
    pub fn reveal(mut self, reveal: bool) -> Self {
        self.reveal = reveal;
        self
    }

    /// Compile the keyword automaton.
    pub fn build(self) -> Result<Scanner, RuleError> {
        let mut keywords: Vec<String> = Vec::new();
        let mut pattern_rules: Vec<Vec<usize>> = Vec::new();
        let mut keywordless = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.keywords.is_empty() {
                keywordless.push(i);
            }
            for k in &rule.keywords {
                match keywords.iter().position(|x| x == k) {
                    Some(p) => {
                        if let Some(list) = pattern_rules.get_mut(p) {
                            list.push(i);
                        }
                    }
                    None => {
                        keywords.push(k.clone());
                        pattern_rules.push(vec![i]);
                    }
                }
            }
        }
        // A full DFA: with more keywords than the SIMD packed searcher takes (64), the default
        // choice is an NFA, about half as fast on text with no hits; the DFA's memory (tens of
        // KiB for the built-in set) is worth it on the request path.
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&keywords)
            .map_err(|e| RuleError::Invalid {
                rule: "keywords".into(),
                why: e.to_string(),
            })?;
        let allow_for: Vec<Vec<usize>> = self
            .rules
            .iter()
            .map(|r| {
                self.allowlists
                    .iter()
                    .enumerate()
                    .filter(|(_, (targets, _))| targets.is_empty() || targets.contains(&r.id))
                    .map(|(i, _)| i)
                    .collect()
            })
            .collect();
        let max_window = self.rules.iter().map(|r| r.window).max().unwrap_or(0);
        let line_target = |a: &Allowlist| {
            a.regex_target == crate::rule::RegexTarget::Line && !a.regexes.is_empty()
        };
        let needs_line = self.allowlists.iter().any(|(_, a)| line_target(a))
            || self
                .rules
                .iter()
                .any(|r| r.allowlists.iter().any(line_target));
        let max_keyword = keywords.iter().map(String::len).max().unwrap_or(0);
        Ok(Scanner {
            rules: self.rules,
            allowlists: self.allowlists.into_iter().map(|(_, a)| a).collect(),
            allow_for,
            ac,
            pattern_rules,
            keywordless,
            max_window,
            max_keyword,
            key: self.key,
            reveal: self.reveal,
            needs_line,
        })
    }
}

/// A compiled rule set. Cheap to share across threads; each scan or stream has its own state.
#[derive(Debug, Clone)]
pub struct Scanner {
    rules: Vec<Rule>,
    allowlists: Vec<Allowlist>,
    allow_for: Vec<Vec<usize>>,
    ac: AhoCorasick,
    pattern_rules: Vec<Vec<usize>>,
    keywordless: Vec<usize>,
    max_window: usize,
    max_keyword: usize,
    key: Vec<u8>,
    reveal: bool,
    /// Some allowlist matches against whole lines, so candidates need their line's text.
    needs_line: bool,
}

impl Scanner {
    /// A builder with no rules.
    pub fn builder() -> ScannerBuilder {
        ScannerBuilder::default()
    }

    /// A scanner with the built-in rules and the default fingerprint key.
    pub fn with_defaults() -> Result<Self, RuleError> {
        Self::builder().with_defaults()?.build()
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Scan a whole input. The same as one [`Stream::push`] and [`Stream::finish`].
    pub fn scan(&self, input: &[u8]) -> Vec<Finding> {
        self.scan_path(input, None)
    }

    /// Scan a file's content; rules and allowlists with `path` conditions apply.
    pub fn scan_path(&self, input: &[u8], path: Option<&str>) -> Vec<Finding> {
        let mut s = self.stream_path(path);
        let mut out = s.push(input);
        out.extend(s.finish());
        out
    }

    /// Start a streaming scan: feed chunks of any size; each finding is reported exactly once,
    /// also when a secret straddles chunks. Memory is bounded by the largest rule window, not
    /// by the input.
    pub fn stream(&self) -> Stream<'_> {
        self.stream_path(None)
    }

    /// A streaming scan of a file's content.
    pub fn stream_path(&self, path: Option<&str>) -> Stream<'_> {
        Stream {
            scanner: self,
            path: path.map(str::to_owned),
            buf: Vec::new(),
            base: 0,
            lines_before: 1,
            pending: Vec::new(),
            searched: 0,
            line_mark: std::cell::Cell::new((0, 1)),
            reported: HashSet::new(),
        }
    }

    /// `text` with every secret the scanner finds replaced by `[REDACTED:<rule>]` (see
    /// [`redact`]): for text going to a log, a record or a model.
    pub fn redacted(&self, text: &str) -> String {
        let findings = self.scan(text.as_bytes());
        if findings.is_empty() {
            text.to_owned()
        } else {
            String::from_utf8_lossy(&redact(text.as_bytes(), &findings)).into_owned()
        }
    }

    /// The fingerprint of `secret` under this scanner's key.
    pub fn fingerprint(&self, secret: &[u8]) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(secret);
        let digest = mac.finalize().into_bytes();
        hex::encode(digest.get(..8).unwrap_or_default())
    }

    /// Whether a non-generic rule recognises `secret` on its own. Depends on the secret's
    /// bytes only, so it cannot make results depend on chunking.
    fn specific_rule_matches(&self, secret: &[u8]) -> bool {
        self.ac.find_overlapping_iter(secret).any(|m| {
            self.pattern_rules
                .get(m.pattern().as_usize())
                .is_some_and(|rules| {
                    rules.iter().any(|&r| {
                        self.rules.get(r).is_some_and(|rule| {
                            !rule.id.starts_with("generic") && rule.regex.is_match(secret)
                        })
                    })
                })
        })
    }

    /// How many bytes a stream keeps between chunks.
    pub fn carry(&self) -> usize {
        2 * self.max_window + self.max_keyword
    }
}

/// A streaming scan. See [`Scanner::stream`].
#[derive(Debug)]
pub struct Stream<'s> {
    scanner: &'s Scanner,
    path: Option<String>,
    /// Unprocessed input, plus enough before it for the windows of pending keyword hits.
    buf: Vec<u8>,
    /// Offset of `buf[0]` in the whole input.
    base: u64,
    /// Line number of `buf[0]`.
    lines_before: u64,
    /// Keyword hits found but not yet examined (their window is not all buffered yet).
    pending: Vec<(u64, u64, u32)>,
    /// Input offset up to which the keyword automaton has run.
    searched: u64,
    /// The last (offset, line) computed, where the next line count starts.
    line_mark: std::cell::Cell<(u64, u64)>,
    /// Findings already reported: (rule, start, end).
    reported: HashSet<(usize, u64, u64)>,
}

impl Stream<'_> {
    /// Feed the next chunk; returns the findings now complete.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Finding> {
        self.buf.extend_from_slice(chunk);
        self.process(false)
    }

    /// End of input: returns the remaining findings.
    pub fn finish(mut self) -> Vec<Finding> {
        self.process(true)
    }

    fn process(&mut self, last: bool) -> Vec<Finding> {
        let sc = self.scanner;
        let end = self.base + self.buf.len() as u64;
        // A keyword hit is examined once its whole window is in the buffer: the same window a
        // scan of the whole input would use, so chunking cannot change what is found.
        let cut = if last {
            end
        } else {
            end.saturating_sub(sc.max_window as u64)
        };
        let mut found = Vec::new();
        // Search only what is new, starting far enough back to catch a keyword that straddles
        // the previous end; hits that end before it were found last time.
        let from = self
            .searched
            .saturating_sub(sc.max_keyword.saturating_sub(1) as u64)
            .max(self.base);
        let searched = self.searched;
        let new_hits: Vec<(u64, u64, u32)> = sc
            .ac
            .find_overlapping_iter(
                self.buf
                    .get((from - self.base) as usize..)
                    .unwrap_or_default(),
            )
            .map(|m| {
                (
                    from + m.start() as u64,
                    from + m.end() as u64,
                    m.pattern().as_u32(),
                )
            })
            .filter(|&(_, he, _)| he > searched)
            .collect();
        self.pending.extend(new_hits);
        self.searched = end;
        let (ready, pending): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|&(_, he, _)| he <= cut);
        self.pending = pending;
        for (hs, he, pattern) in ready {
            let rules = sc
                .pattern_rules
                .get(pattern as usize)
                .cloned()
                .unwrap_or_default();
            for r in rules {
                self.check(r, Some((hs, he)), end, &mut found);
            }
        }
        for r in sc.keywordless.clone() {
            self.check(r, None, cut, &mut found);
        }
        if !last {
            self.trim(cut);
        }
        found.sort_by(|a, b| (a.start, a.end, &a.rule).cmp(&(b.start, b.end, &b.rule)));
        found
    }

    /// Drop what no pending hit can need.
    fn trim(&mut self, cut: u64) {
        let sc = self.scanner;
        let keep_from = cut
            .saturating_sub((sc.max_window + sc.max_keyword) as u64)
            .max(self.base);
        let drop = (keep_from - self.base) as usize;
        if drop == 0 {
            return;
        }
        let dropped = self.buf.get(..drop).unwrap_or_default();
        self.lines_before += dropped.iter().filter(|&&b| b == b'\n').count() as u64;
        self.buf.drain(..drop);
        self.base = keep_from;
        let base = self.base;
        self.reported.retain(|(_, _, e)| *e >= base);
    }

    /// Run rule `r` on the window around a keyword hit (or, for a keyword-less rule, on the
    /// whole buffer up to `limit`).
    fn check(&mut self, r: usize, hit: Option<(u64, u64)>, limit: u64, out: &mut Vec<Finding>) {
        let sc = self.scanner;
        let Some(rule) = sc.rules.get(r) else { return };
        if let Some(p) = &rule.path {
            match &self.path {
                Some(path) if p.is_match(path) => {}
                _ => return,
            }
        }
        let (ws, we) = match hit {
            Some((hs, he)) => (
                hs.saturating_sub(rule.window as u64).max(self.base),
                (he + rule.window as u64).min(limit),
            ),
            None => (self.base, limit),
        };
        if we <= ws {
            return;
        }
        let Some(window) = self
            .buf
            .get((ws - self.base) as usize..(we - self.base) as usize)
        else {
            return;
        };
        // Find match spans with the fast (DFA) search; resolve capture groups only for a match
        // that contains the keyword that selected the rule.
        for found in rule.regex.find_iter(window) {
            let (ms, me) = (ws + found.start() as u64, ws + found.end() as u64);
            if let Some((hs, he)) = hit
                && (ms > hs || me < he)
            {
                continue;
            }
            let Some(bounded) = window.get(..found.end()) else {
                continue;
            };
            let Some(caps) = rule.regex.captures_at(bounded, found.start()) else {
                continue;
            };
            let Some(m0) = caps.get(0) else { continue };
            let Some(secret) = caps.get(rule.secret_group).or(Some(m0)) else {
                continue;
            };
            let (ss, se) = (ws + secret.start() as u64, ws + secret.end() as u64);
            if secret.as_bytes().is_empty() || self.reported.contains(&(r, ss, se)) {
                continue;
            }
            if rule.id.starts_with("generic") && sc.specific_rule_matches(secret.as_bytes()) {
                // The same value is a known credential format: the specific rule reports it.
                continue;
            }
            let entropy = shannon_entropy(secret.as_bytes());
            if rule.entropy.is_some_and(|min| entropy < min) {
                continue;
            }
            let secret_text = String::from_utf8_lossy(secret.as_bytes());
            let whole = String::from_utf8_lossy(m0.as_bytes());
            let line = if sc.needs_line {
                self.line_text(ss)
            } else {
                String::new()
            };
            let path = self.path.as_deref();
            let excused = rule
                .allowlists
                .iter()
                .any(|a| a.excuses(&secret_text, &whole, &line, path))
                || sc.allow_for.get(r).is_some_and(|ids| {
                    ids.iter().any(|&i| {
                        sc.allowlists
                            .get(i)
                            .is_some_and(|a| a.excuses(&secret_text, &whole, &line, path))
                    })
                });
            if excused {
                continue;
            }
            self.reported.insert((r, ss, se));
            out.push(Finding {
                rule: rule.id.clone(),
                start: ss,
                end: se,
                line: self.line_of(ss),
                entropy,
                fingerprint: sc.fingerprint(secret.as_bytes()),
                decoders: Vec::new(),
                secret: sc.reveal.then(|| secret_text.into_owned()),
            });
        }
    }

    /// 1-based line of `offset`, counted from the last position asked (findings come in
    /// nearly increasing order), so a scan counts each newline about once.
    fn line_of(&self, offset: u64) -> u64 {
        let (mut at, mut line) = self.line_mark.get();
        if at < self.base || at > offset {
            (at, line) = (self.base, self.lines_before);
        }
        let from = (at - self.base) as usize;
        let to = (offset - self.base) as usize;
        line += self
            .buf
            .get(from..to)
            .unwrap_or_default()
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        self.line_mark.set((offset, line));
        line
    }

    /// The line holding `offset`, at most 4 KiB each side of it (a minified file is one line),
    /// for `regexTarget = "line"`.
    fn line_text(&self, offset: u64) -> String {
        const REACH: usize = 4096;
        let at = (offset - self.base) as usize;
        let lo = at.saturating_sub(REACH);
        let hi = (at + REACH).min(self.buf.len());
        let start = self
            .buf
            .get(lo..at)
            .and_then(|b| b.iter().rposition(|&c| c == b'\n'))
            .map_or(lo, |p| lo + p + 1);
        let end = self
            .buf
            .get(at..hi)
            .and_then(|b| b.iter().position(|&c| c == b'\n'))
            .map_or(hi, |p| at + p);
        String::from_utf8_lossy(self.buf.get(start..end).unwrap_or_default()).into_owned()
    }
}

/// Replace every finding's secret in `text` with `[REDACTED:<rule>]`. Overlapping findings are
/// merged (the first rule named wins). Offsets are the scanner's byte offsets into `text`.
pub fn redact(text: &[u8], findings: &[Finding]) -> Vec<u8> {
    let mut spans: Vec<(usize, usize, &str)> = findings
        .iter()
        .map(|f| (f.start as usize, f.end as usize, f.rule.as_str()))
        .filter(|(s, e, _)| s < e && *e <= text.len())
        .collect();
    spans.sort_by_key(|(s, e, _)| (*s, std::cmp::Reverse(*e)));
    let mut out = Vec::with_capacity(text.len());
    let mut pos = 0;
    for (s, e, rule) in spans {
        if e <= pos {
            continue;
        }
        let s = s.max(pos);
        out.extend_from_slice(text.get(pos..s).unwrap_or_default());
        out.extend_from_slice(format!("[REDACTED:{rule}]").as_bytes());
        pos = e;
    }
    out.extend_from_slice(text.get(pos..).unwrap_or_default());
    out
}
