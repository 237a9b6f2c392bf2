#!/usr/bin/env bash
# GPU check: engine speed and memory on CUDA at fp32 and bf16, and a small search with two trials at
# once on the one device. Installs nothing: run `make install` first (or have `autopeft` on PATH).
# About 3-5 minutes on one H200; every figure is printed at the end.
#
#   scripts/gpu-check.sh                      # GLUE from $AUTOPEFT_GLUE_DIR or ../shared/data/glue
#   TASK=sst2 MODEL=/path/to/model scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "gpu-check: $*" >&2; exit 1; }

if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; AUTOPEFT=.venv/bin/autopeft
elif command -v autopeft >/dev/null; then PY=python3; AUTOPEFT=autopeft
else fail "no .venv and no autopeft on PATH: run 'make install' first"; fi

DEVICE=${DEVICE:-cuda}
MODEL=${MODEL:-minilm}
TASK=${TASK:-rte}
export AUTOPEFT_GLUE_DIR=${AUTOPEFT_GLUE_DIR:-$(cd .. && pwd)/shared/data/glue}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
[[ -d $AUTOPEFT_GLUE_DIR ]] || fail "GLUE folder $AUTOPEFT_GLUE_DIR is missing: set AUTOPEFT_GLUE_DIR"

# Fail fast, before loading anything, when there is no GPU to check.
$PY - "$DEVICE" <<'PY' || fail "no CUDA device: torch.cuda.is_available() is False (torch built for CUDA? driver?)"
import sys, torch
sys.exit(0 if torch.cuda.is_available() else 1)
PY
$PY - "$DEVICE" <<'PY'
import sys, torch
d = torch.device(sys.argv[1]); i = d.index or 0
free, total = torch.cuda.mem_get_info(i)
print(f"gpu-check: torch {torch.__version__}, {sys.argv[1]} = {torch.cuda.get_device_name(i)}, "
      f"{free / 2**30:.0f} of {total / 2**30:.0f} GiB free, bf16 {torch.cuda.is_bf16_supported(False)}")
PY

WORK=$(mktemp -d -t autopeft-gpu-check-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
BENCH=(bench engine --model "$MODEL" --task "$TASK" --device "$DEVICE" --train-samples 2000 --eval-samples 500
       --seeds 40,41,42 --trials 8 --no-progress)

echo "== bench engine, fp32"
$AUTOPEFT "${BENCH[@]}" --precision fp32 | tee "$WORK/fp32.log"
echo "== bench engine, bf16"
$AUTOPEFT "${BENCH[@]}" --precision bf16 | tee "$WORK/bf16.log"

echo "== more jobs than the device holds: refused before any work"
$PY - "$DEVICE" "$MODEL" <<'PY'
import sys
from autopeft.engine.devices import check_device
from autopeft.errors import UserError
try:
    check_device(sys.argv[1], "bf16", jobs=100_000, model=sys.argv[2])
    sys.exit("gpu-check: --jobs 100000 was NOT refused")
except UserError as err:
    print(f"refused: {err}")
PY

echo "== search: 6 trials, 2 at once on $DEVICE, bf16"
started=$(date +%s.%N)
$AUTOPEFT search --model "$MODEL" --task "$TASK" --trials 6 --sampler random --device "$DEVICE" --jobs 2 \
  --fidelity "epochs=1,max_train_samples=1000,max_eval_samples=300,precision=bf16" \
  --storage "sqlite:///$WORK/study.db" --artifacts "$WORK/artifacts" --study gpu-check | tee "$WORK/search.log"
echo "$started $(date +%s.%N)" > "$WORK/search.time"

echo "== figures"
$PY - "$WORK" <<'PY'
import json, statistics, sys
from pathlib import Path

work = Path(sys.argv[1])
fig = {p: json.loads((work / f"{p}.log").read_text().strip().splitlines()[-1]) for p in ("fp32", "bf16")}
for p, f in fig.items():
    gpu = f"peak {f['engine_peak_memory_mb']:.0f} MB a trial (baseline {f['baseline_peak_memory_mb']:.0f} MB)"
    held = f"{f['device_memory_after_first_mb']:.0f} -> {f['device_memory_after_last_mb']:.0f} MB held between trials"
    print(f"{p}: {f['engine_trials_per_hour']:.0f} trials/hour, {f['engine_ex_per_s']:.0f} ex/s "
          f"({f['ratio']:.2f}x the Trainer), {gpu}, {held}")
a, b = fig["fp32"]["engine_scores"], fig["bf16"]["engine_scores"]
noise = max(statistics.stdev(a), statistics.stdev(b), 0.01)  # seed noise, at least a point of the metric
gap = abs(statistics.fmean(a) - statistics.fmean(b))
verdict = "agree" if gap <= 2 * noise else "DISAGREE"
print(f"scores: fp32 {statistics.fmean(a):.4f} vs bf16 {statistics.fmean(b):.4f} over seeds {fig['fp32']['seeds']}: "
      f"gap {gap:.4f}, seed noise {noise:.4f} -> {verdict} (within 2x seed noise)")
print(f"speed-up of bf16 over fp32: {fig['bf16']['engine_trials_per_hour'] / fig['fp32']['engine_trials_per_hour']:.2f}x")
start, end = map(float, (work / "search.time").read_text().split())
print(f"search --jobs 2: 6 trials in {end - start:.0f} s (with start-up), {6 * 3600 / (end - start):.0f} trials/hour")
if verdict != "agree":
    sys.exit(1)
PY
