#!/usr/bin/env bash
# Proxy benchmark: added latency per new connection, CONNECT bulk throughput and scanned
# request-body throughput, against going direct and against tinyproxy, in one process.
# Installs tinyproxy from Debian's packages if it is missing. Loopback only; ends by itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x /usr/bin/tinyproxy ] && [ ! -x /usr/sbin/tinyproxy ]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q tinyproxy
fi
cargo bench -p cordon-proxy --bench proxy
