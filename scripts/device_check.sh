#!/usr/bin/env bash
# The GPU checks in one run, for a machine with an NVIDIA GPU (run from the repository root):
#
#     bash scripts/device_check.sh [OUTPUT_DIR]
#
# Grades every assignment's correct fixture with --device cuda (JSON reports kept), then the
# benchmark table with --device cuda, then assignment8's calibration on the GPU. Writes
# everything under OUTPUT_DIR (default: $OUT, else ./device-check) and exits non-zero if a
# fixture does not get full points. Each step has a time limit so the whole run stays under
# ten minutes. DEVICE=cpu runs the same steps on the CPU (to try the script without a GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-device-check}}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
device="${DEVICE:-cuda}"
status=0

python3 - <<'PY' | tee "$out/gpu.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0))
PY

for fixture in tests/fixtures/assignment*/correct; do
    name="$(basename "$(dirname "$fixture")")"
    started=$(date +%s.%N)
    timeout 300 python3 -m grader "$name" --submission "$fixture" --device "$device" --format json \
        -o "$out/$name.json" >/dev/null 2>"$out/$name.stderr"
    code=$?
    seconds=$(python3 -c "print(f'{$(date +%s.%N) - $started:.1f}')")
    summary=$(python3 - "$out/$name.json" <<'PY'
import json, sys
try:
    report = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print("no report")
    sys.exit(1)
metrics = {k: v for t in report["tests"] for k, v in t.get("metrics", {}).items()}
shown = {k: metrics[k] for k in ("accuracy", "training_s") if k in metrics}
print(f"{report['score']:g}/{report['max_score']:g} on {report['device']} {shown}")
sys.exit(0 if report["score"] == report["max_score"] else 1)
PY
)
    full=$?
    echo "$name: exit $code, ${seconds} s end to end, $summary" | tee -a "$out/grades.txt"
    if [ "$code" -ne 0 ] || [ "$full" -ne 0 ]; then
        status=1
    fi
done

timeout 240 python3 bench/run.py --device "$device" --repeats 3 --batch-count 0 \
    > "$out/bench.txt" 2>&1 || status=1
timeout 240 python3 bench/assignment8.py --device "$device" --seeds 3 \
    > "$out/assignment8.txt" 2>&1 || status=1
tail -n 40 "$out/bench.txt" "$out/assignment8.txt"
exit $status
