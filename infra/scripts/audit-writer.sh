#!/usr/bin/env bash
# Start the audit writer for a local deployment: the one process holding the audit signing key.
#   infra/scripts/audit-writer.sh start|stop
# Its state (signing key 0600, public key, signed anchor, socket) lives under infra/.run/audit-writer/,
# outside the workspace. Commands use it through the socket; `ehl audit show|verify` need only the
# public key and the anchor. In a TRE run this as the writer's own OS account, with
# EHL_AUDIT_GROUP set to the group holding the role accounts (the socket is created 0660 for it).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${EHL_BIN:-$here/.venv/bin}"
state="${EHL_AUDIT_STATE_DIR:-$here/infra/.run/audit-writer}"
workspace="${EHL_WORKSPACE:-$here/workspace}"
socket="$state/audit.sock"
group_args=()
if [ -n "${EHL_AUDIT_GROUP:-}" ]; then group_args=(--group "$EHL_AUDIT_GROUP"); fi
mkdir -p "$state"
chmod 0755 "$state"

case "${1:-start}" in
  start)
    if [ -f "$state/writer.pid" ] && kill -0 "$(cat "$state/writer.pid")" 2>/dev/null; then
      echo "Audit writer already running (pid $(cat "$state/writer.pid")), socket $socket"; exit 0
    fi
    # The key pair is made once (signing.key 0600, public.pem 0644) and kept.
    "$bin/python" -c "import sys; from ig_policies.audit import create_demo_audit; create_demo_audit(sys.argv[1])" "$state"
    nohup "$bin/ehl" audit serve --workspace "$workspace" --key "$state/signing.key" \
      --anchor "$state/anchor.json" --socket "$socket" "${group_args[@]}" >"$state/writer.log" 2>&1 &
    echo $! >"$state/writer.pid"
    for _ in $(seq 1 60); do
      if [ -S "$socket" ]; then
        echo "Audit writer: socket $socket"
        echo "  audit settings: public_key=$state/public.pem anchor=$state/anchor.json socket=$socket"
        exit 0
      fi
      if ! kill -0 "$(cat "$state/writer.pid")" 2>/dev/null; then
        echo "The audit writer refused to start; see $state/writer.log:" >&2; cat "$state/writer.log" >&2; exit 1
      fi
      sleep 0.5
    done
    echo "The audit writer did not open its socket; see $state/writer.log" >&2; exit 1
    ;;
  stop)
    if [ -f "$state/writer.pid" ]; then kill "$(cat "$state/writer.pid")" 2>/dev/null || true; rm -f "$state/writer.pid"; fi
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
