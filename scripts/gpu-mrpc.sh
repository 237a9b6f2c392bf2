#!/usr/bin/env bash
# Issue 14's open cell, on a GPU: does MRPC have a search fidelity with signal, and at it does every module
# kind learn (no run at the constant-prediction floor where the serial adapter learns)? On this project's
# 2-core CPU no rung within an hour had signal (docs/BENCHMARKS.md), so MRPC's module table was taken at a
# fidelity where nothing learns. This calibrates MRPC on larger rungs, then runs `bench modules --tasks mrpc`
# at the chosen rung. Installs nothing (`make install` first). Outputs under $OUT (default runs/gpu-mrpc):
# calibration.txt (the ladder, last line JSON), modules.csv and modules.txt (the table, last line JSON).
#
# $AUTOPEFT_GLUE_DIR must hold MRPC/: the device tool sends the checkout only, so copy ../shared/data/glue/MRPC
# into an ignored folder of the repo (e.g. runs/glue/MRPC), carry it, and set AUTOPEFT_GLUE_DIR=runs/glue there.
#
#   scripts/gpu-mrpc.sh                                    # MiniLM on cuda, about 6-9 minutes on one H200
#   DEVICE=cpu MODEL=tiny-bert LADDER=32x1,64x1 JOBS=1 scripts/gpu-mrpc.sh   # a dry run of the plumbing
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICE=${DEVICE:-cuda}
MODEL=${MODEL:-minilm}
JOBS=${JOBS:-4}
LADDER=${LADDER:-1000x2,2000x3,3668x3,3668x6}  # 3668: MRPC's whole training set
MINUTES=${MINUTES:-4}
OUT=${OUT:-runs/gpu-mrpc}
export AUTOPEFT_GLUE_DIR=${AUTOPEFT_GLUE_DIR:-$(cd .. && pwd)/shared/data/glue} HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
AUTOPEFT=.venv/bin/autopeft
[[ -x $AUTOPEFT ]] || AUTOPEFT=autopeft
mkdir -p "$OUT"

echo "== calibrate mrpc ($LADDER, $MINUTES minutes, $JOBS jobs on $DEVICE)"
rc=0
$AUTOPEFT calibrate --model "$MODEL" --task mrpc --ladder "$LADDER" --max-minutes "$MINUTES" --jobs "$JOBS" \
  --device "$DEVICE" --storage "sqlite:///$OUT/calibration.db" | tee "$OUT/calibration.txt" || rc=$?
[[ $rc -eq 0 ]] || { echo "gpu-mrpc: no rung with signal (exit $rc): the module table would again be taken blind"; exit "$rc"; }

# the chosen rung's every knob, as `--fidelity` takes them
FIDELITY=$(tail -1 "$OUT/calibration.txt" | python3 -c '
import json, sys
chosen = json.loads(sys.stdin.read())["chosen"]
print(",".join(f"{k}={v}" for k, v in chosen.items() if v is not None))')
echo "== bench modules on mrpc at $FIDELITY"
$AUTOPEFT bench modules --model "$MODEL" --tasks mrpc --fidelity "$FIDELITY" --jobs "$JOBS" --device "$DEVICE" \
  --out "$OUT/modules.csv" | tee "$OUT/modules.txt"
