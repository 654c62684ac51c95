#!/usr/bin/env bash
# A campaign (benchmarks/campaign.py) on a lent GPU machine, inside the device tool's limits:
# run what the committed results still lack, in LANES trainings side by side on the one GPU,
# stop starting runs in time and stop everything at LIMIT seconds, then pack every run folder
# this call changed (finished runs, and partial/last.pt of unfinished ones, which a later call
# resumes) into $OUT as <= 6 tar.gz parts of 15 MiB, plus the log.
# Here, before the device call (once):  benchmarks/gpu_check.sh --prepare-data
# Device call (carry [".gpu_data"]):     PYTHON=python3 benchmarks/gpu_campaign.sh \
#                                            benchmarks/campaigns/table3.yaml
# Back here, from the repository root:  cat "$FILES_AT"/results.tar.gz.part-* | tar -xzf -
#                                        then commit benchmarks/results/<campaign>/
# A design-space chain folder (`regnet study chain`) instead of a YAML file: its missing models
# are trained, LANES at a time, until LIMIT; its studies' records (not the run folders) are
# packed the same way:  PYTHON=python3 benchmarks/gpu_campaign.sh \
#                           benchmarks/results/design_chain/cifar_chain
# Environment: LIMIT (seconds, default 540), LANES (default 5), ONLY (run names), OUT
# (default /tmp/gpu_campaign), PYTHON. Smoke test on a CPU (a tiny campaign of 2 runs):
#   LIMIT=300 LANES=2 OUT=/tmp/gc benchmarks/gpu_campaign.sh tests/fixtures/tiny_campaign.yaml
#   (then rm -r benchmarks/results/tiny_campaign)
set -uo pipefail
cd "$(dirname "$0")/.."
CAMPAIGN=${1:?usage: benchmarks/gpu_campaign.sh CAMPAIGN.yaml}
OUT=${OUT:-/tmp/gpu_campaign} LIMIT=${LIMIT:-540} LANES=${LANES:-5}
mkdir -p "$OUT"
PY=${PYTHON:-}
if [ -z "$PY" ]; then if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi; fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg
LOG="$OUT/gpu_campaign.log"; : > "$LOG"
# The campaigns name ../shared/data/cifar10-jpg/train; a device machine has no ../shared, so
# the carried copy is put there (the same relative path: resumed runs keep their config).
if [ ! -d ../shared/data/cifar10-jpg/train ] && [ -f .gpu_data/cifar10-jpg.tar.gz ]; then
    [ -d .gpu_data/train ] || tar -xzf .gpu_data/cifar10-jpg.tar.gz -C .gpu_data
    mkdir -p ../shared/data/cifar10-jpg
    ln -s "$PWD/.gpu_data/train" ../shared/data/cifar10-jpg/train
fi
STAMP=$(mktemp); sleep 1
{ date -u; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
} >> "$LOG" 2>&1
if [ -f "$CAMPAIGN/chain.json" ]; then
    timeout --signal=TERM "$LIMIT" "$PY" -m regnet study chain "$CAMPAIGN" --workers "$LANES" \
        >> "$LOG" 2>&1
    echo "chain exit $? at $(date -u)" >> "$LOG"
    # every study record this call wrote (the run folders stay behind)
    changed=$(find "$CAMPAIGN" -path '*/runs' -prune -o -type f -newer "$STAMP" -print)
    what=files
else
    NAME=$("$PY" -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['name'])" \
           "$CAMPAIGN")
    RESULTS=benchmarks/results/$NAME
    only=(); [ -n "${ONLY:-}" ] && only=(--only $ONLY)
    "$PY" benchmarks/campaign.py "$CAMPAIGN" --list >> "$LOG" 2>&1
    # Start nothing in the last 3 minutes (a run started then would only leave an early partial).
    timeout --signal=TERM "$LIMIT" "$PY" benchmarks/campaign.py "$CAMPAIGN" --lanes "$LANES" \
        --stop-starting-after "$(( LIMIT / 60 > 3 ? LIMIT / 60 - 3 : 1 ))" "${only[@]}" \
        >> "$LOG" 2>&1
    echo "campaign exit $? at $(date -u)" >> "$LOG"
    "$PY" benchmarks/campaign.py "$CAMPAIGN" --list >> "$LOG" 2>&1
    # every run folder holding a file this call wrote (a finished run's record, a partial/last.pt)
    changed=$(find "$RESULTS" -type f -newer "$STAMP" 2>/dev/null \
              | sed -E "s#^($RESULTS/[^/]+)/.*#\1#" | sort -u)
    what="run folders"
fi
rm -f "$STAMP"
if [ -n "$changed" ]; then
    tar -czf - $changed | split -b 15M - "$OUT/results.tar.gz.part-"
    echo "packed: $(echo $changed | wc -w) $what," \
         "$(du -ch "$OUT"/results.tar.gz.part-* | tail -1)" >> "$LOG"
else
    echo "packed: nothing changed" >> "$LOG"
fi
tail -n 40 "$LOG"
