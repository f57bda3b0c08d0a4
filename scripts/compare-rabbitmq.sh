#!/usr/bin/env bash
# Runs warren and Debian's RabbitMQ side by side on this machine through the standard scenarios
# and writes docs/benchmarks.md (plus the latency plot and .hgrm files under docs/benchmarks/).
# Rerun to regenerate. Only the part between the page's BEGIN/END generated markers is rewritten
# (scripts/splice-generated.sh); hand-written sections outside them, such as the cluster
# figures, are kept. The markers are checked before any benchmark runs.
#
#   scripts/compare-rabbitmq.sh
#
# Environment knobs (defaults in brackets):
#   ROUNDS [3]         alternating rounds per scenario
#   DURATION [10]      seconds of load per run
#   RABBIT_PORT [5673] port of the RabbitMQ it starts (reused, and left running, if something already listens there)
#   WARREN_URL         compare an already running warren (or any broker) instead of starting one
#   OUT [docs/benchmarks.md]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
RABBIT_PORT=${RABBIT_PORT:-5673}
OUT=${OUT:-docs/benchmarks.md}
IMAGES_DIR=$(dirname "$OUT")/benchmarks
# Marks (and names) the generated part of $OUT.
GENERATOR=scripts/compare-rabbitmq.sh
# A node that has not printed its URL in this long is not going to.
WARREN_START_SECONDS=60

work=$(mktemp -d "${TMPDIR:-/tmp}/warren-compare.XXXXXX")
warren_pid=
rabbit_started=

stop_all() {
  local status=$?
  if [[ -n "$warren_pid" ]] && kill -0 "$warren_pid" 2>/dev/null; then
    kill -TERM "$warren_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$warren_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$warren_pid" 2>/dev/null || true
  fi
  if [[ -n "$rabbit_started" ]]; then scripts/bench-rabbitmq.sh down "$RABBIT_PORT" || true; fi
  rm -rf "$work"
  exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Before minutes of benchmarks: the page must say which part of it is ours to rewrite.
scripts/splice-generated.sh --check "$OUT" "$GENERATOR" || { log "not touching $OUT"; exit 1; }

# Build when the compiled entry points are missing or older than any source.
if [[ ! -f dist/src/cli/bench.js || ! -f dist/src/cli/warren.js || ! -f dist/scripts/bench-doc.js ]] \
  || [[ -n "$(find src scripts -name '*.ts' -newer dist/src/cli/bench.js -print -quit)" ]]; then
  log "building"
  npm run build >"$work/build.log" 2>&1 || log "build reported errors (see below); using what it emitted"
  grep -m 20 'error TS' "$work/build.log" >&2 || true
fi
for entry in dist/src/cli/bench.js dist/scripts/bench-doc.js; do
  [[ -f "$entry" ]] || { log "missing $entry after the build"; exit 1; }
done

if (exec 3<>"/dev/tcp/127.0.0.1/$RABBIT_PORT") 2>/dev/null; then
  log "something already listens on $RABBIT_PORT; using it as the RabbitMQ side and leaving it running"
  rabbit_url=amqp://guest:guest@127.0.0.1:$RABBIT_PORT
else
  log "starting rabbitmq-server on 127.0.0.1:$RABBIT_PORT"
  rabbit_started=1
  rabbit_url=$(scripts/bench-rabbitmq.sh up "$RABBIT_PORT")
fi

if [[ -n "${WARREN_URL:-}" ]]; then
  warren_url=$WARREN_URL
  log "using the broker at ${warren_url%%@*}@… as warren"
else
  log "starting warren"
  mkdir -p "$work/warren-data"
  # As npm start runs it (one V8 helper thread: README, "Running a node").
  node --v8-pool-size=1 dist/src/cli/warren.js --port 0 --data-dir "$work/warren-data" >"$work/warren.out" 2>"$work/warren.err" &
  warren_pid=$!
  for _ in $(seq 1 $((WARREN_START_SECONDS * 10))); do
    grep -q '^amqp://' "$work/warren.out" 2>/dev/null && break
    kill -0 "$warren_pid" 2>/dev/null || { log "warren exited:"; tail -20 "$work/warren.err" >&2; exit 1; }
    sleep 0.1
  done
  listen=$(grep -m1 '^amqp://' "$work/warren.out" || true)
  [[ -n "$listen" ]] || { log "warren printed no URL within $WARREN_START_SECONDS s"; tail -20 "$work/warren.err" >&2; exit 1; }
  # warren prints amqp://HOST:PORT; the bench logs in as guest like it does on RabbitMQ.
  warren_url=amqp://guest:guest@${listen#amqp://}
fi

mkdir -p "$IMAGES_DIR"
common=(--url "$warren_url" --compare "$rabbit_url" --rounds "$ROUNDS" --duration "$DURATION" --json)
scenarios=()
failed_scenarios=0
run_scenario() {
  local name=$1 title=$2 image=$3
  shift 3
  log "scenario: $title"
  # Progress and the text report go to the log; --json puts the document on stdout.
  if node dist/src/cli/bench.js "${common[@]}" "$@" >"$work/$name.json" 2>"$work/$name.log"; then
    log "  done"
  else
    log "  bench exited with $? (the page will say so); last lines:"
    failed_scenarios=$((failed_scenarios + 1))
    tail -5 "$work/$name.log" >&2
  fi
  grep -E '^(comparison|median)' -A0 "$work/$name.log" >&2 || true
  scenarios+=("$title::$work/$name.json::$image")
}

run_scenario transient '1 → 1, transient, 256 B, unlimited rate' '' \
  --producers 1 --consumers 1
run_scenario persistent-confirms '1 → 1, persistent with confirms (window 100), 256 B' '' \
  --producers 1 --consumers 1 --persistent --confirm 100
run_scenario four-queues '4 → 4 over 4 queues, transient, 256 B' '' \
  --producers 4 --consumers 4 --queues 4
run_scenario fixed-rate '1 → 1 at a fixed 1 000 msg/s with confirms: latency' "benchmarks/fixed-rate-latency.svg" \
  --producers 1 --consumers 1 --rate 1000 --confirm 1000 --plot "$IMAGES_DIR/fixed-rate-latency.svg" --hgrm "$IMAGES_DIR/fixed-rate-hgrm"

node dist/scripts/bench-doc.js --out "$work/generated.md" \
  --command "scripts/compare-rabbitmq.sh (ROUNDS=$ROUNDS DURATION=$DURATION)" \
  "${scenarios[@]}" >/dev/null
scripts/splice-generated.sh "$OUT" "$work/generated.md" "$GENERATOR"
log "wrote the generated part of $OUT"
if ((failed_scenarios > 0)); then log "$failed_scenarios scenario(s) reported errors; see $OUT"; exit 1; fi
