#!/usr/bin/env bash
# MCP round-trip benchmark: cordon's read_file against the official filesystem server (npm,
# installed here if missing), and cordon's sandboxed exec of `true`, driven by the same rmcp
# client in one process. Loopback-free (stdio); ends by itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
clients=target/mcp-clients
mkdir -p "$clients"
[ -f "$clients/package.json" ] || echo '{"name": "cordon-mcp-clients", "private": true}' >"$clients/package.json"
if [ ! -x "$clients/node_modules/.bin/mcp-server-filesystem" ]; then
  (cd "$clients" && npm install --ignore-scripts --no-audit --no-fund --silent \
    @modelcontextprotocol/server-filesystem@2026.8.31)
fi
cargo bench -p cordon-cli --bench mcp
