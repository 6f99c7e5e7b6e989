#!/usr/bin/env bash
# Everything the GPU figures need, in one device call; results land in $OUT.
#   phase "quick": throughput vs the seed baseline, interactive speed, a quality smoke run
#   phase "folds": the 5-fold quality table (main rows), phase "extra": fold-1 extra rows
# Needs .carry/acdc256.npz (benchmarks/acdc_prep.py) and .carry/seed_baseline.py.
set -u
phase=${1:-quick}
OUT=${OUT:-/tmp/wss-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
cd benchmarks
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, sys; print('torch', torch.__version__, 'python', sys.version.split()[0])"; } | tee -a "$OUT/log.txt"
case "$phase" in
quick)
  log throughput
  timeout 170 python3 throughput.py --device cuda --batch 64 --steps 40 --baseline-steps 30 --compile 2>&1 | tee -a "$OUT/throughput.txt"
  log interactive
  timeout 150 python3 interactive.py --source pack --device cuda --volumes 5 --budgets 5,15 --size 256 --width 16 --batch 16 --crop-margin 0.35 2>&1 | tee -a "$OUT/interactive.txt"
  log smoke
  timeout 90 python3 acdc_quality.py --folds 1 --rows size+centroid-barrier --device cuda --width 16 --batch 32 --steps 150 --workers 8 --out "$OUT/smoke.jsonl" 2>&1 | tail -3 ;;
folds)
  log folds
  timeout 560 python3 acdc_quality.py --folds 1,2,3,4,5 --rows "${ROWS:-full,partial,size+centroid-barrier}" --device cuda --width 16 --batch 32 --steps "${STEPS:-1200}" --workers 12 --out "$OUT/quality.jsonl" 2>&1 | tee -a "$OUT/quality.txt" ;;
extra)
  log extra
  timeout 560 python3 acdc_quality.py --folds 1 --rows "${ROWS:-size-quad,size-barrier,size+centroid-quad,oracle-quad,size+centroid-barrier+crf}" --device cuda --width 16 --batch 32 --steps "${STEPS:-1200}" --workers 12 --out "$OUT/quality_extra.jsonl" 2>&1 | tee -a "$OUT/quality_extra.txt" ;;
esac
log done
