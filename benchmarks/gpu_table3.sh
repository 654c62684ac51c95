#!/usr/bin/env bash
# Table III at the paper's 150 epochs on one GPU (issue 20): the five Table III nets, seed 0,
# the campaign's recipe (benchmarks/campaigns/table3.yaml: R12, fp32, the 45k / 5k cifar10-jpg
# split, split_seed 0) with --epochs 150, all five side by side on the one GPU (each alone
# would leave it mostly idle at batch 128), each stopped at the time limit and resumable.
# Writes under $OUT (default benchmarks/results/table3_gpu150) at most 7 files, inside the
# device tool's 8: gpu_table3.json (per net: epochs done, every epoch's metrics, summary when
# finished, images/s), gpu_table3.log, and per net one checkpoint: <net>_best.pt when it
# finished, else <net>_last.pt, which a later run of this script copies back and resumes.
# Usage, from the repository root (data: see benchmarks/gpu_check.sh --prepare-data):
#   LIMIT=540 benchmarks/gpu_table3.sh            # seconds of training before each net stops
#   NETS="resnet20 regnet20_lstm" EPOCHS=2 DEVICE=cpu SUBSET=512 LIMIT=120 benchmarks/gpu_table3.sh
#                                                 # a CPU smoke test of the script itself
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/table3_gpu150}
mkdir -p "$OUT"
PY=${PYTHON:-}
if [ -z "$PY" ]; then if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi; fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg
if [ -f .gpu_data/cifar10-jpg.tar.gz ] && [ ! -d .gpu_data/train ]; then
    tar -xzf .gpu_data/cifar10-jpg.tar.gz -C .gpu_data
fi
CIFAR_DIR=${CIFAR_DIR:-}
if [ -z "$CIFAR_DIR" ]; then
    if [ -d ../shared/data/cifar10-jpg/train ]; then CIFAR_DIR=../shared/data/cifar10-jpg/train
    else CIFAR_DIR=.gpu_data/train; fi
fi
NETS=${NETS:-resnet20 se_resnet20 regnet20_gru regnet20_lstm se_regnet20_lstm}
EPOCHS=${EPOCHS:-150} DEVICE=${DEVICE:-cuda} LIMIT=${LIMIT:-540} SUBSET=${SUBSET:-}
EXTRA=()
[ -n "$SUBSET" ] && EXTRA+=(--train-subset "$SUBSET")
LOG="$OUT/gpu_table3.log"; : > "$LOG"
echo "$(date -u) data $CIFAR_DIR nets $NETS epochs $EPOCHS limit ${LIMIT}s" >> "$LOG"
pids=()
mkdir -p runs/table3_gpu150
for net in $NETS; do
    run=runs/table3_gpu150/$net
    if [ -f "$OUT/${net}_best.pt" ]; then echo "$net: finished earlier" >> "$LOG"; continue; fi
    if [ -f "$OUT/${net}_last.pt" ] && [ ! -f "$run/last.pt" ]; then  # re-running resumes
        mkdir -p "$run" && cp "$OUT/${net}_last.pt" "$run/last.pt"
    fi
    timeout --signal=TERM "$LIMIT" "$PY" -m regnet train "$net" --recipe cifar10_fast \
        --data-dir "$CIFAR_DIR" --val-split 5000 --split-seed 0 --no-wd-exempt-norm-bias \
        --batch-size 128 --lr 0.2 --crop-pad 2 --amp off --seed 0 --epochs "$EPOCHS" \
        --device "$DEVICE" --no-tensorboard --progress none --out "$run" "${EXTRA[@]}" \
        > "runs/table3_gpu150/$net.out" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; echo "pid $pid exit $?" >> "$LOG"; done
"$PY" - "$OUT" $NETS <<'PYEOF' 2>&1 | tee -a "$LOG"
import json, os, shutil, sys
out, nets = sys.argv[1], sys.argv[2:]
path = os.path.join(out, "gpu_table3.json")
res = json.load(open(path)) if os.path.exists(path) else {}
for net in nets:
    run = os.path.join("runs", "table3_gpu150", net)
    if not os.path.isdir(run):  # finished in an earlier call: keep what that one recorded
        continue
    rows = []
    if os.path.exists(os.path.join(run, "metrics.jsonl")):
        rows = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
    done = os.path.exists(os.path.join(run, "summary.json"))
    keep = "best.pt" if done else "last.pt"
    if os.path.exists(os.path.join(run, keep)):
        shutil.copy(os.path.join(run, keep), os.path.join(out, f"{net}_{keep}"))
    if done and os.path.exists(os.path.join(out, f"{net}_last.pt")):
        os.unlink(os.path.join(out, f"{net}_last.pt"))
    tail = open(os.path.join("runs", "table3_gpu150", f"{net}.out")).read()[-2000:]
    res[net] = {"epochs_done": len(rows), "finished": done,
                "last_val_top1": rows[-1]["val_top1"] if rows else None,
                "images_per_sec": rows[-1]["images_per_sec"] if rows else None,
                "metrics": rows, "output_tail": tail,
                "summary": json.load(open(os.path.join(run, "summary.json"))) if done else None}
json.dump(res, open(path, "w"), indent=1)
print(json.dumps({k: {f: v.get(f) for f in ("epochs_done", "finished", "last_val_top1",
                                            "images_per_sec")} for k, v in res.items()}, indent=1))
PYEOF
