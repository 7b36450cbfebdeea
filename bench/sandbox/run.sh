#!/usr/bin/env bash
# Sandbox start-up and bridge benchmark: sandboxed `true` against bare fork+exec and
# bubblewrap, interleaved in one process, then the bridge's cost per connection.
# Installs bubblewrap from Debian's packages if it is missing. Run as root or with
# unprivileged user namespaces enabled.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v bwrap >/dev/null; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap
fi
bwrap --version
cargo bench -p cordon-sandbox --bench start
