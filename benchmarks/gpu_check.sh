#!/usr/bin/env bash
# One prepared check of the GPU path (about 5 minutes on one GPU), writing one JSON:
#   1. the GPU tests (tests/test_cuda.py) and the device-path and fused-cell tests;
#   2. training throughput of resnet20, regnet20_lstm, regnetx_400mf, iresnet50 on the GPU at
#      batch 512 (the fast path: uint8 data on the device, batched augmentation there,
#      channels_last, bf16/fp16 autocast, no per-step host sync), and resnet20's plain
#      reference loop beside it;
#   3. a 2-epoch CIFAR-10 run (cifar10_fast recipe, fp32, seed 0) on the GPU and the same run
#      on the CPU, and their per-epoch losses side by side.
# Usage, from the repository root:
#   benchmarks/gpu_check.sh                       # writes $OUT/gpu_check.json (OUT: default
#                                                 # benchmarks/results/gpu_check)
#   CIFAR_DIR=path/to/cifar10-jpg/train benchmarks/gpu_check.sh
#   benchmarks/gpu_check.sh --prepare-data        # here, before a device run: pack the 50,000
#       # JPEGs of ../shared/data/cifar10-jpg/train into .gpu_data/cifar10-jpg.tar.gz
#       # (git-ignored, 16 MB: the files share their JPEG tables, which gzip folds), to
#       # carry to a machine without ../shared (device tool: carry [".gpu_data"]); this
#       # script unpacks it there.
# Environment: PYTHON (default: .venv/bin/python, else python3), GPU_CHECK_COMPILE=1 adds a
# torch.compile throughput row (its compilation takes minutes), SUBSET (images of the 2-epoch
# runs, default 10000); DEVICE, BATCH, STEPS, WARMUP (cuda, 512, 30, 10) shrink it for a smoke
# test of the script itself on a CPU: DEVICE=cpu BATCH=16 STEPS=1 WARMUP=1 SUBSET=256.
set -uo pipefail
cd "$(dirname "$0")/.."
SRC_DATA=../shared/data/cifar10-jpg/train
if [ "${1:-}" = "--prepare-data" ]; then
    rm -rf .gpu_data && mkdir -p .gpu_data
    tar -czf .gpu_data/cifar10-jpg.tar.gz -C "$(dirname "$SRC_DATA")" "$(basename "$SRC_DATA")"
    grep -qx '/.gpu_data/' .git/info/exclude 2>/dev/null || echo '/.gpu_data/' >> .git/info/exclude
    du -sh .gpu_data; exit 0
fi
if [ -f .gpu_data/cifar10-jpg.tar.gz ] && [ ! -d .gpu_data/train ]; then
    tar -xzf .gpu_data/cifar10-jpg.tar.gz -C .gpu_data   # -> .gpu_data/train/<class>/*.jpg
fi
OUT=${OUT:-benchmarks/results/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-}
if [ -z "$PY" ]; then if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi; fi
export PYTHONPATH="$PWD/src:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg
CIFAR_DIR=${CIFAR_DIR:-}
if [ -z "$CIFAR_DIR" ]; then
    if [ -d "$SRC_DATA" ]; then CIFAR_DIR=$SRC_DATA; elif [ -d .gpu_data/train ]; then
        CIFAR_DIR=.gpu_data/train; fi
fi
SUBSET=${SUBSET:-10000}
DEVICE=${DEVICE:-cuda} BATCH=${BATCH:-512} STEPS=${STEPS:-30} WARMUP=${WARMUP:-10}
LOG="$OUT/gpu_check.log"; : > "$LOG"
step() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$LOG"; }

step "environment"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
                                'available', torch.cuda.is_available())"
} >> "$LOG" 2>&1

step "tests"
timeout 150 "$PY" -m pytest -q -rs tests/test_cuda.py tests/test_device_path.py \
    tests/test_fused_cell.py --junitxml="$OUT/junit.xml" -p no:cacheprovider >> "$LOG" 2>&1
echo "pytest exit $?" >> "$LOG"

step "throughput, batch $BATCH"
timeout 150 "$PY" benchmarks/train_throughput.py --device "$DEVICE" --batch-size "$BATCH" \
    --models resnet20,regnet20_lstm,regnetx_400mf,iresnet50 --no-reference --steps "$STEPS" \
    --warmup "$WARMUP" --repeats 2 --images 16384 --out "$OUT/throughput.json" --quiet \
    >> "$LOG" 2>&1
echo "throughput exit $?" >> "$LOG"
timeout 90 "$PY" benchmarks/train_throughput.py --device "$DEVICE" --batch-size "$BATCH" \
    --models resnet20 --num-workers 8 --steps "$STEPS" --warmup "$WARMUP" --repeats 1 \
    --images 16384 --out "$OUT/throughput_reference.json" --quiet >> "$LOG" 2>&1
echo "reference exit $?" >> "$LOG"
if [ "${GPU_CHECK_COMPILE:-0}" = 1 ]; then
    timeout 300 "$PY" benchmarks/train_throughput.py --device "$DEVICE" --batch-size "$BATCH" \
        --models resnet20,regnet20_lstm --no-reference --compile --steps "$STEPS" \
        --warmup "$WARMUP" --repeats 1 --images 16384 --out "$OUT/throughput_compile.json" \
        --quiet >> "$LOG" 2>&1
    echo "compile exit $?" >> "$LOG"
fi

step "2-epoch CIFAR runs (${CIFAR_DIR:-no CIFAR folder: digits})"
if [ -n "$CIFAR_DIR" ]; then DATA=(--dataset imagefolder --data-dir "$CIFAR_DIR" --val-split 1000)
else DATA=(--dataset digits --val-split 200); fi
for dev in "$DEVICE" cpu; do
    timeout 240 "$PY" -m regnet train resnet20 --recipe cifar10_fast "${DATA[@]}" \
        --train-subset "$SUBSET" --batch-size 128 --epochs 2 --amp off --seed 0 --device "$dev" \
        --no-tensorboard --progress none --out "$OUT/run_$dev" >> "$LOG" 2>&1
    echo "run $dev exit $?" >> "$LOG"
    [ "$DEVICE" = cpu ] && break
done

step "summary"
"$PY" - "$OUT" "${CIFAR_DIR:-digits}" <<'PYEOF' 2>&1 | tee -a "$LOG"
import json, os, sys, xml.etree.ElementTree as ET
out, data = sys.argv[1], sys.argv[2]
res = {"data": data, "log": open(os.path.join(out, "gpu_check.log")).read()[-20000:]}
try:
    suite = ET.parse(os.path.join(out, "junit.xml")).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    res["tests"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
except Exception as e:
    res["tests"] = {"error": repr(e)}
for name in ("throughput", "throughput_reference", "throughput_compile"):
    path = os.path.join(out, f"{name}.json")
    if os.path.exists(path):
        r = json.load(open(path))
        res[name] = {m: {k: e[k]["images_per_s"] for k in e if isinstance(e[k], dict)}
                     for m, e in r["models"].items()}
        res[name + "_machine"] = r.get("machine")
runs = {}
for dev in ("cuda", "cpu"):  # (a CPU smoke test writes run_cpu only)
    path = os.path.join(out, f"run_{dev}", "metrics.jsonl")
    if os.path.exists(path):
        rows = [json.loads(line) for line in open(path)]
        runs[dev] = [{k: r.get(k) for k in ("epoch", "train_loss", "val_top1",
                                            "images_per_sec")} for r in rows]
res["runs"] = runs
t = res.get("throughput", {})
if "resnet20" in t and "regnet20_lstm" in t:
    res["regnet20_lstm_over_resnet20"] = t["regnet20_lstm"]["fast"] / t["resnet20"]["fast"]
json.dump(res, open(os.path.join(out, "gpu_check.json"), "w"), indent=1)
print(json.dumps({k: v for k, v in res.items() if k != "log"}, indent=1))
PYEOF
