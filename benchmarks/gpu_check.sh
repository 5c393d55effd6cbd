#!/usr/bin/env bash
# The prepared GPU check (docs/gpu.md): one call on a lent GPU machine, about 9 minutes.
#
#   bash benchmarks/gpu_check.sh [--device cuda] [--budget 540] [--parts tests,rate,pipeline,quality,precision,profile] [--quick]
#
# Parts (run in this order, the issues' targets first), each with its own time limit inside the budget (a part
# that fails or runs out of time does not stop the next one; what it printed is kept; the limits add up to more
# than the budget, so the last parts get what is left):
#   tests     the device-path tests on CUDA (tests/engine/test_on_device.py with SELFSUP_TEST_DEVICES);
#             after profile: the engine's pipeline/training test files with the device chosen automatically
#   rate      blind-spot training step rate at batch 4/16/64/256 (benchmarks/bench_speed.py)
#   pipeline  bench_pipeline rows train-data, n2v, blindspot (bf16 and fp32; pipeline-tiles: at explicit tiles);
#             ceiling-zarr and n2v-zarr (the
#             issue's Zarr row: N2V depth 2 / 32 ch, uint16 stack, chunks 1x512x512, own process)
#   batch-quality  (asked by --parts only) batch 4 vs 64 from the prior, fixed steps, 5 seeds side by side
#   quality   equal wall-clock quality at batch 4/16/64 from the prior, camera_g25 and nuclei_pg30, 30 s, 1 seed
#             (issue 9 item 2 and issue 12's GPU default: is a larger batch as good in 30 s?)
#   precision the quality tests' N2V / N2V2 runs at fp32 and bf16, equal steps, 3 seeds (rows in train_rate.jsonl,
#             with whether the self-check flagged a run)
#   profile   where the time goes: sync sites and top operators of training steps, one N2V prediction
# Writes to $OUT (default ./gpu-check-out): summary.md, summary.json, run.log, tests.log,
# train_rate.jsonl, pipeline.jsonl, profile.jsonl, quality.jsonl (8 files: the most a call brings back).
# --quick --device cpu is the dry run on a development machine (small sizes, step budgets).
set -u
DEVICE=cuda QUICK=0 BUDGET= PARTS=tests,rate,pipeline,quality,precision,profile SCALE=1
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift ;;
    --budget) BUDGET=$2; shift ;;
    --parts) PARTS=$2; shift ;;
    --quick) QUICK=1 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
# the dry run on a shared development CPU is slower than the GPU: three times each part's limit
[ "$QUICK" = 1 ] && SCALE=3
BUDGET=${BUDGET:-$((540 * SCALE))}
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-check-out}
PY=${PY:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
START=$(date +%s)
LOG=$OUT/run.log
: >"$LOG"
export PYTHONUNBUFFERED=1
# zarr and its needs travel as wheels (make gpu-pack); the device image has none of them
if ! $PY -c "import zarr" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >>"$LOG" 2>&1 && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$ROOT/src:$ROOT/benchmarks${PYTHONPATH:+:$PYTHONPATH}
[ -d .gpu/data ] && export SELFSUP_DENOISE_DATA=$ROOT/.gpu/data

# part NAME LIMIT_S OUTFILE CMD...: run CMD with stdout to OUTFILE (appended) under min(LIMIT, what is left)
part() {
  local name=$1 limit=$2 out=$3 left t0 rc
  shift 3
  case ",$PARTS," in *",$name,"* | *",${name%%-*},"*) ;; *) return ;; esac  # a whole name, or its family
  limit=$((limit * SCALE))
  left=$((BUDGET - ($(date +%s) - START) - 15))
  if [ "$left" -lt 20 ]; then
    echo "{\"part\": \"$name\", \"rc\": null, \"seconds\": 0, \"status\": \"skipped: budget spent\"}" >>"$WORK/parts.jsonl"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "=== $name (limit ${limit}s): $*" | tee -a "$LOG"
  t0=$(date +%s)
  timeout -k 10 "$limit" "$@" >>"$out" 2>>"$LOG"
  rc=$?
  echo "{\"part\": \"$name\", \"rc\": $rc, \"seconds\": $(($(date +%s) - t0)), \"limit\": $limit}" >>"$WORK/parts.jsonl"
  echo "=== $name: rc $rc after $(($(date +%s) - t0)) s" | tee -a "$LOG"
}

{ nvidia-smi 2>&1 || echo "no nvidia-smi"; } >>"$LOG"
$PY benchmarks/gpu_summary.py env >"$WORK/env.json" 2>>"$LOG"

if [ "$QUICK" = 1 ]; then
  EXISTING="tests/engine/test_patches.py tests/engine/test_train_sync.py"
  RATE="--batches 4,16 --steps 2" PIPE="--quick" THREADS=1 XDIST=""
  QUALITY="--steps 2 --batches 4,16 --crop 128" PROFILE="--batches 4 --steps 2 --size 256"
  PRECISION="--seeds 0 --steps-factor 0.03" TILES=256
  BQUALITY="--steps-scale 0.01 --seeds 2 --jobs 1 --threads 1 --deadline 200"
else
  EXISTING="tests/engine/test_patches.py tests/engine/test_train_sync.py tests/engine/test_pipeline.py
    tests/engine/test_pipeline_zarr.py
    tests/engine/test_predict.py tests/engine/test_blindspot_core.py tests/engine/test_blindspot_maths.py
    tests/engine/test_train.py tests/engine/test_blindspot.py"
  RATE="--batches 4,16,64,256 --steps 30" PIPE="--reps 2" THREADS=$(($(nproc) / 2)) XDIST="-n 4 --dist loadfile"
  QUALITY="--seconds 30 --batches 4,16,64" PROFILE="--batches 4,64 --steps 10 --size 2048"
  PRECISION="--seeds 0,1,2" TILES=2048,1024,512
  BQUALITY="--jobs 8 --deadline 215 --steps camera_g25:4=3114,camera_g25:64=1768,nuclei_pg30:4=3500,nuclei_pg30:64=1769"
fi
PYTEST="$PY -m pytest -q -p no:cacheprovider -o addopts= -rfEs --timeout 120"
SELFSUP_TEST_DEVICES=$DEVICE part tests-on-device 90 "$OUT/tests.log" $PYTEST tests/engine/test_on_device.py \
  tests/engine/test_step_casts.py
# shellcheck disable=SC2086
part rate 80 "$OUT/train_rate.jsonl" $PY benchmarks/bench_speed.py --algorithm blindspot --own-defaults \
  --device "$DEVICE" --only train $RATE
# shellcheck disable=SC2086
part pipeline 90 "$OUT/pipeline.jsonl" $PY benchmarks/bench_pipeline.py --device "$DEVICE" --precision bf16 \
  --rows train-data,n2v,blindspot $PIPE
# which tile is fastest on the device: the automatic tile against explicit ones (several passes overlap their copies)
# shellcheck disable=SC2086
part pipeline-tiles 40 "$OUT/pipeline.jsonl" $PY benchmarks/bench_pipeline.py --device "$DEVICE" --precision bf16 \
  --rows n2v,blindspot --tiles $TILES $PIPE
# the Zarr rows in their own process (its peak RSS is theirs): one stack, zarr alone once, identity and N2V nets
# shellcheck disable=SC2086
part pipeline-zarr 90 "$OUT/pipeline.jsonl" $PY benchmarks/bench_pipeline.py --device "$DEVICE" \
  --rows ceiling-zarr,n2v-zarr $PIPE
# shellcheck disable=SC2086
part quality 230 "$WORK/quality.out" $PY benchmarks/bench_robustness.py $QUALITY --seeds 1 --cases camera_g25,nuclei_pg30 \
  --n2v-seeds 0 --threads "$THREADS" --jsonl "$OUT/quality.jsonl" --out "$WORK/quality.md"
# the evidence for a GPU default batch: batch 4 against 64, fixed steps (replaying 30-s runs' schedules), 5 seeds,
# runs as processes side by side on the one device (benchmarks/gpu_batch_quality.py); not in the default parts
# shellcheck disable=SC2086
part batch-quality 230 "$WORK/batch_quality.out" $PY benchmarks/gpu_batch_quality.py --device "$DEVICE" $BQUALITY \
  --jsonl "$OUT/quality.jsonl" --out "$WORK/quality.md"
# bf16 vs fp32 training at equal steps: the two quality tests' runs (they failed on the H200 in session 7)
# shellcheck disable=SC2086
part precision 100 "$OUT/train_rate.jsonl" $PY benchmarks/gpu_precision.py --device "$DEVICE" $PRECISION
# shellcheck disable=SC2086
part pipeline-fp32 30 "$OUT/pipeline.jsonl" $PY benchmarks/bench_pipeline.py --device "$DEVICE" --precision fp32 \
  --rows n2v,blindspot $PIPE
# shellcheck disable=SC2086
part profile 45 "$OUT/profile.jsonl" $PY benchmarks/gpu_profile.py --device "$DEVICE" $PROFILE
# the existing files as they are: "auto" picks the GPU where a test does not name a device
# shellcheck disable=SC2086
part tests-existing 100 "$OUT/tests.log" $PYTEST $XDIST -m "not slow" $EXISTING

# N2V2 trained to its test's 1200 steps ("auto": the GPU, bf16), a slow test the part above leaves out
part tests-n2v2 60 "$OUT/tests.log" $PYTEST tests/engine/test_train.py -k n2v2

$PY benchmarks/gpu_summary.py summary "$WORK" "$OUT" >>"$LOG" 2>&1
echo "=== done in $(($(date +%s) - START)) s; summary:" | tee -a "$LOG"
cat "$OUT/summary.md"
