#!/usr/bin/env bash
# Start a real Prefect server on 127.0.0.1 (analytics off), with its database under infra/.run/.
#   infra/scripts/prefect-server.sh start|stop
# Then:  export PREFECT_API_URL=http://127.0.0.1:4200/api   (or prefect.api_url in a settings file)
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${EHL_BIN:-$here/.venv/bin}"
run_dir="${EHL_PREFECT_RUN_DIR:-$here/infra/.run/prefect}"
port="${PREFECT_SERVER_PORT:-4200}"
mkdir -p "$run_dir"
export PREFECT_HOME="$run_dir/home" PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
export PREFECT_API_DATABASE_CONNECTION_URL="${PREFECT_API_DATABASE_CONNECTION_URL:-sqlite+aiosqlite:///$run_dir/prefect.db}"

case "${1:-start}" in
  start)
    if [ -f "$run_dir/server.pid" ] && kill -0 "$(cat "$run_dir/server.pid")" 2>/dev/null; then
      echo "Prefect server already running (pid $(cat "$run_dir/server.pid"))"; exit 0
    fi
    nohup "$bin/prefect" server start --host 127.0.0.1 --port "$port" --analytics-off \
      >"$run_dir/server.log" 2>&1 &
    echo $! >"$run_dir/server.pid"
    for _ in $(seq 1 90); do
      if "$bin/python" "$here/infra/scripts/http_ok.py" "http://127.0.0.1:$port/api/health"; then
        echo "Prefect server: http://127.0.0.1:$port  (export PREFECT_API_URL=http://127.0.0.1:$port/api)"
        echo "Deploy the approved flows:  cd $here && PREFECT_API_URL=http://127.0.0.1:$port/api $bin/prefect deploy --all"
        exit 0
      fi
      sleep 1
    done
    echo "Prefect server did not become healthy; see $run_dir/server.log" >&2; exit 1
    ;;
  stop)
    if [ -f "$run_dir/server.pid" ]; then kill "$(cat "$run_dir/server.pid")" 2>/dev/null || true; rm -f "$run_dir/server.pid"; fi
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
