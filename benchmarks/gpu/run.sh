#!/usr/bin/env bash
# The GPU session's one script (benchmarks/gpu/README.md): CUDA tests, then the cost table, then the reference
# implementations, into $OUT (the device tool's output folder; benchmarks/gpu-out/ when unset).
#   bash benchmarks/gpu/run.sh           # on the GPU machine, 6-9 minutes
#   bash benchmarks/gpu/run.sh --tiny    # tiny shapes on the CPU: checks the script itself, < 2 minutes
# Time limits (seconds, override by environment): TESTS_S 100, REF_S 90 each, MEASURE_S 240 (rows past it are
# skipped; hard stop 60 s later): at most 580 s in all, inside the device tool's 600 s per command.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-benchmarks/gpu-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
TINY=0
[ "${1:-}" = "--tiny" ] && TINY=1
TESTS_S=${TESTS_S:-100}; MEASURE_S=${MEASURE_S:-240}; REF_S=${REF_S:-90}
log() { echo "[run.sh $(date -u +%H:%M:%S)] $*" | tee -a "$OUT/run.log" >&2; }

log "python $($PY -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/run.log"

# 1. tests taking the `device` fixture: on CUDA their `cuda` instances compare CUDA with the CPU (fp32 parity,
#    bf16 tolerance); on a CPU-only machine (--tiny) the CPU instances of the same files
if [ "$TINY" = 1 ]; then SEL=(-m "not cuda"); else SEL=(-m cuda); fi
log "tests: pytest ${SEL[*]} tests/test_gpu_parity.py tests/test_precision.py"
timeout "$TESTS_S" $PY -m pytest -q -p no:cacheprovider "${SEL[@]}" tests/test_gpu_parity.py tests/test_precision.py \
  --junitxml="$OUT/tests.xml" > "$OUT/tests.log" 2>&1
echo "tests_rc=$?" | tee -a "$OUT/run.log"
tail -n 15 "$OUT/tests.log"

# 2. reference implementations (need CUDA and a copy of their code in .gpu-ref/, see README.md)
REF_JSON="$OUT/ref_rows.json"
rm -f "$REF_JSON"
if [ "$TINY" = 0 ]; then
  for impl in repblend lors; do
    if [ -f ".gpu-ref/$impl/$( [ $impl = lors ] && echo distill_tesla_lors.py || echo distill_repblend.py )" ]; then
      log "reference $impl"
      timeout "$REF_S" $PY benchmarks/gpu/refdrive.py "$impl" --ref ".gpu-ref/$impl" --iters 4 --out "$REF_JSON" \
        > "$OUT/ref_$impl.log" 2>&1
      echo "ref_${impl}_rc=$?" | tee -a "$OUT/run.log"
      tail -n 3 "$OUT/ref_$impl.log"
    else
      log "reference $impl: .gpu-ref/$impl missing (see benchmarks/gpu/README.md), skipped"
    fi
  done
fi

# 3. our rows at paper shapes (or tiny), with the reference rows merged in
if [ "$TINY" = 1 ]; then ARGS=(--tiny --budget-s 90); else ARGS=(--budget-s "$MEASURE_S"); fi
log "measure ${ARGS[*]}"
timeout $((MEASURE_S + 60)) $PY benchmarks/gpu/measure.py "${ARGS[@]}" --ref-rows "$REF_JSON" --tests-xml "$OUT/tests.xml" \
  --out "$OUT/gpu.json" \
  2>&1 | tee "$OUT/measure.log" | grep -E "^\[measure\]" >&2
echo "measure_rc=${PIPESTATUS[0]}" | tee -a "$OUT/run.log"
log "done; results in $OUT/gpu.json"
