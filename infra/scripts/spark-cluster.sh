#!/usr/bin/env bash
# Start or stop a standalone Spark master and one worker on 127.0.0.1, from the Spark that ships
# inside the installed pyspark package (it has no start-master.sh, but spark-daemon.sh works).
#   infra/scripts/spark-cluster.sh start|stop|status
# Then point the pipeline at it:  spark: {master: spark://127.0.0.1:7077}  in a settings file.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
py="${EHL_PYTHON:-$here/.venv/bin/python}"
run_dir="${EHL_SPARK_RUN_DIR:-$here/infra/.run/spark}"
master_port="${SPARK_MASTER_PORT:-7077}"
master_web_port="${SPARK_MASTER_WEBUI_PORT:-8090}"
worker_web_port="${SPARK_WORKER_WEBUI_PORT:-8091}"
cores="${SPARK_WORKER_CORES:-2}"
memory="${SPARK_WORKER_MEMORY:-4g}"

SPARK_HOME="$(cd "$(dirname "$("$py" -m pip show pyspark 2>/dev/null | awk '/^Location:/{print $2}')/pyspark/__init__.py")" && pwd)"
export SPARK_HOME
export SPARK_LOG_DIR="$run_dir/logs" SPARK_PID_DIR="$run_dir/pids" SPARK_WORKER_DIR="$run_dir/work"
export SPARK_LOCAL_IP=127.0.0.1 SPARK_MASTER_HOST=127.0.0.1 PYSPARK_PYTHON="$py"
mkdir -p "$SPARK_LOG_DIR" "$SPARK_PID_DIR" "$SPARK_WORKER_DIR"
daemon="$SPARK_HOME/sbin/spark-daemon.sh"
chmod +x "$SPARK_HOME"/sbin/*.sh "$SPARK_HOME"/bin/* 2>/dev/null || true

wait_for_port() {  # host port seconds
  for _ in $(seq 1 "$3"); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 1
  done
  return 1
}

case "${1:-start}" in
  start)
    "$daemon" start org.apache.spark.deploy.master.Master 1 \
      --host 127.0.0.1 --port "$master_port" --webui-port "$master_web_port"
    wait_for_port 127.0.0.1 "$master_port" 60 || { echo "Spark master did not start; see $SPARK_LOG_DIR" >&2; exit 1; }
    "$daemon" start org.apache.spark.deploy.worker.Worker 1 \
      --host 127.0.0.1 --cores "$cores" --memory "$memory" --webui-port "$worker_web_port" \
      "spark://127.0.0.1:$master_port"
    echo "Spark master: spark://127.0.0.1:$master_port (logs: $SPARK_LOG_DIR)"
    ;;
  stop)
    "$daemon" stop org.apache.spark.deploy.worker.Worker 1 || true
    "$daemon" stop org.apache.spark.deploy.master.Master 1 || true
    ;;
  status)
    "$daemon" status org.apache.spark.deploy.master.Master 1 || true
    "$daemon" status org.apache.spark.deploy.worker.Worker 1 || true
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
