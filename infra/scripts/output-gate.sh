#!/usr/bin/env bash
# Start the output gate for a local deployment: the one writer of outputs/pending/.
#   infra/scripts/output-gate.sh start|stop
# Its state (signing key 0600, public key, socket) lives under infra/.run/output-gate/, outside the
# workspace. Researchers' requests reach it through the socket (the output's bytes, never a path);
# it checks each one, writes and signs the request, and audits it through the audit writer
# ('make audit-writer' first). In a TRE run this as the gate's own OS account (the owner of
# outputs/pending/, named as gate.account in the deployment), with EHL_GATE_GROUP set to the
# researchers' group (the socket is created 0660 for it). The deployment names the gate:
#   gate: {public_key: <state>/public.pem, socket: <state>/gate.sock, account: <the gate's account>}
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${EHL_BIN:-$here/.venv/bin}"
state="${EHL_GATE_STATE_DIR:-$here/infra/.run/output-gate}"
socket="$state/gate.sock"
group_args=()
if [ -n "${EHL_GATE_GROUP:-}" ]; then group_args=(--group "$EHL_GATE_GROUP"); fi
mkdir -p "$state"
chmod 0755 "$state"

case "${1:-start}" in
  start)
    if [ -f "$state/gate.pid" ] && kill -0 "$(cat "$state/gate.pid")" 2>/dev/null; then
      echo "Output gate already running (pid $(cat "$state/gate.pid")), socket $socket"; exit 0
    fi
    # The key pair is made once (signing.key 0600, public.pem 0644) and kept.
    "$bin/python" -c "import sys; from ig_policies.gate_keys import create_demo_gate; create_demo_gate(sys.argv[1])" "$state"
    nohup "$bin/ehl" gate serve --key "$state/signing.key" --socket "$socket" "${group_args[@]}" \
      >"$state/gate.log" 2>&1 &
    echo $! >"$state/gate.pid"
    for _ in $(seq 1 60); do
      if [ -S "$socket" ]; then
        echo "Output gate: socket $socket"
        echo "  gate settings: public_key=$state/public.pem socket=$socket account=$(id -un)"
        exit 0
      fi
      if ! kill -0 "$(cat "$state/gate.pid")" 2>/dev/null; then
        echo "The output gate refused to start; see $state/gate.log:" >&2; cat "$state/gate.log" >&2; exit 1
      fi
      sleep 0.5
    done
    echo "The output gate did not open its socket; see $state/gate.log" >&2; exit 1
    ;;
  stop)
    if [ -f "$state/gate.pid" ]; then kill "$(cat "$state/gate.pid")" 2>/dev/null || true; rm -f "$state/gate.pid"; fi
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
