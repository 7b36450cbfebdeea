#!/usr/bin/env python3
"""Generate the secret-scanner benchmark corpus: realistic source and config files with
planted secrets, and the ground truth (file, line, kind) for every planted one.

Deterministic (fixed seed): every run and every tool sees the same bytes. The planted values
are synthetic, in each credential's public format; none is real.

usage: corpus.py OUT_DIR SIZE_MB
"""
import base64, gzip, json, os, random, string, sys

out, size_mb = sys.argv[1], int(sys.argv[2])
R = random.Random(7)
A = string.ascii_letters + string.digits
HEX = "0123456789abcdef"

def r(n, cs=A):
    return "".join(R.choice(cs) for _ in range(n))

# Formats every scanner should know, in the clear.
PLAIN = {
    "github-pat": lambda: f"ghp_{r(36)}",
    "aws-access-key-id": lambda: f"AKIA{r(16, string.ascii_uppercase + '234567')}",
    "gitlab-pat": lambda: f"glpat-{r(20)}",
    "slack-bot-token": lambda: f"xoxb-{r(11, string.digits)}-{r(12, string.digits)}-{r(24)}",
    "stripe-secret-key": lambda: f"sk_live_{r(32)}",
    "npm-token": lambda: f"npm_{r(36)}",
    "sendgrid-api-key": lambda: f"SG.{r(22)}.{r(43)}",
    "private-key": lambda: "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(r(64, A + "+/") for _ in range(8)) + "\n-----END RSA PRIVATE KEY-----",
}
# The same secrets hidden in encodings: what leaves through an API is often wrapped.
WRAPPED = {
    "base64": lambda s: base64.b64encode(f"token={s}".encode()).decode(),
    "base64-gzip": lambda s: base64.b64encode(gzip.compress((f"config:\n  token: {s}\n" + "pad: ok\n" * 30).encode(), mtime=0)).decode(),
    "url-encoded": lambda s: "".join(f"%{ord(c):02X}" for c in s),
}

IDENTS = ["request", "buffer", "config", "handler", "value", "result", "index", "client", "parser", "stream", "offset", "session"]
def ident():
    return R.choice(IDENTS) + "_" + R.choice(IDENTS)

def code_line():
    t = R.randrange(9)
    a, b = ident(), ident()
    return [
        f"    let {a} = {b}.iter().map(|x| x + 1).collect::<Vec<_>>();",
        f"fn {a}(input: &[u8]) -> Result<usize, Error> {{",
        f"    if {a}.len() > MAX_LEN {{ return Err(Error::TooLarge); }}",
        f"def {a}({b}, *args, **kwargs):",
        f"        return {b}.get(\"{a}\", None)",
        f"  {a}: {R.randrange(1000)}",
        f"// {a} is reset when the {b} is flushed",
        f"token_ttl_seconds = {R.randrange(3600)}",
        f"see https://docs.example.org/{a}/{b}",
    ][t]

truth = []
os.makedirs(out, exist_ok=True)
target = size_mb * 1024 * 1024
written = 0
n = 0
while written < target:
    n += 1
    ext = R.choice(["rs", "py", "yaml", "env", "json", "txt"])
    path = f"src/mod{n // 50}/file{n}.{ext}"
    lines = []
    for _ in range(R.randrange(150, 400)):
        lines.append(code_line())
        if R.random() < 0.004:
            kind = R.choice(list(PLAIN))
            secret = PLAIN[kind]()
            wrap = R.choice([None, None, None] + list(WRAPPED))
            value = secret if wrap is None else WRAPPED[wrap](secret)
            prefix = R.choice(["export TOKEN=", "key: ", "\"credential\": \"", "auth = "])
            line_no = len(lines) + 1
            text = prefix + value
            lines.extend(text.split("\n"))
            truth.append({"file": path, "line": line_no, "kind": kind, "wrap": wrap or "plain"})
    content = "\n".join(lines) + "\n"
    full = os.path.join(out, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(content)
    written += len(content)

with open(os.path.join(os.path.dirname(out.rstrip("/")), "truth.json"), "w") as f:
    json.dump(truth, f)
print(f"{n} files, {written / 1e6:.1f} MB, {len(truth)} planted secrets", file=sys.stderr)
