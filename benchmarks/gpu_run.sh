#!/usr/bin/env bash
# Every GPU figure in one device call; results land in $OUT as they are made.
# Order: throughput vs the seed baseline, interactive speed, the 5-fold quality table (main rows),
# then extra rows on fold 1 (on each stream's folds with STREAMS > 1) while time is left
# (--deadline skips runs that would overrun).
# Needs .carry/acdc256.npz (benchmarks/acdc_prep.py) and .carry/seed_baseline.py.
# DEVICE=cpu STEPS=5 ... runs the same path on a CPU as a dry run. Knobs: PARTS, STEPS, BUDGET,
# ROWS / EXTRA (EXTRA= for none) / FOLDS / XFOLDS (EXTRA's folds with one stream) / STREAMS /
# QTHREADS / WARMUP / CRF / QFLAGS (quality; CRF = the +crf rows' weight, QFLAGS more
# acdc_quality.py flags, e.g. "--rotate 20", "--position-bins 3", "--seed 1"),
# TTA (quality: symmetries averaged at prediction, each entry scored on the same training; default
# "1,8"), IVOLS / IBUDGETS / IFLAGS / ITIMEOUT (interactive; its tta@ columns: Predict volume's
# default, eight symmetries averaged, since 2026-11-30), TP_* (throughput).
# Quality and interactive lines carry the largest-component scores too (lcc_*, lcc@).
set -u
OUT=${OUT:-/tmp/wss-out}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-800}
BUDGET=${BUDGET:-560}
PARTS=${PARTS:-"throughput interactive quality"}  # which parts to run
has() { case " $PARTS " in *" $1 "*) return 0;; esac; return 1; }
mkdir -p "$OUT"
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
end=$(( $(date +%s) + BUDGET ))
cd benchmarks
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
  python3 -c "import torch, sys; print('torch', torch.__version__, 'python', sys.version.split()[0])"; } | tee -a "$OUT/log.txt"
has throughput && log throughput && timeout "${TP_TIMEOUT:-90}" python3 throughput.py ${TP_FLAGS:-} --device "$DEVICE" --batch "${TP_BATCH:-64}" --steps "${TP_STEPS:-40}" \
  --baseline-steps "${TP_STEPS:-30}" --size "${TP_SIZE:-256}" 2>&1 | tee -a "$OUT/throughput.txt"
# Interactive settings, '|'-separated, each run as its own process (each pays the device's set-up once).
# Default: the plugin's defaults after its background warm-up (the first press of a fresh process).
# Others measured before: "--batch 16 --steps-for-seconds 13.5" (one press sized to the budget) and
# "--steps 300 --budgets 15 --corrections" (a round of simulated correction strokes, fix_ columns).
# On the H200 the warm-up took 18 s and each volume about 50 s with its scoring: ITIMEOUT covers
# five volumes of one setting.
IFLAGS=${IFLAGS:-"--warm-up --steps 300"}
if has interactive; then
  IFS='|' read -ra iconfigs <<< "$IFLAGS"
  for flags in "${iconfigs[@]}"; do
    log "interactive $flags" && echo "# interactive.py $flags" >> "$OUT/interactive.txt"
    timeout "${ITIMEOUT:-300}" python3 interactive.py --source pack --device "$DEVICE" --volumes "${IVOLS:-5}" \
      --budgets "${IBUDGETS:-5,15}" --tta 8 $flags 2>&1 | tee -a "$OUT/interactive.txt"
  done
fi
# Quality runs in STREAMS parallel processes, the folds dealt round-robin; every stream runs the EXTRA
# rows on its own folds after its main rows, while the deadline allows. quality.jsonl gathers every
# record. What streams buy is overlap of the CPU-side scoring (26-42 s a fold at 256²) with training:
# on the H200 the dual-decoder row kept the GPU busy, 3 and 2 streams trained 17.6-17.7 steps/s in all.
if has quality; then
  log "quality (${STREAMS:-1} streams)"
  IFS=, read -ra folds <<< "${FOLDS:-1,2,3,4,5}"
  streams=${STREAMS:-1}
  for ((s = 0; s < streams; s++)); do
    mine=""
    for ((i = s; i < ${#folds[@]}; i += streams)); do mine+="${mine:+,}${folds[i]}"; done
    [ -n "$mine" ] || continue
    extra_folds=${XFOLDS:-1}; [ "$streams" -gt 1 ] && extra_folds=$mine
    name=quality.txt; [ "$streams" -gt 1 ] && name=quality_$s.txt
    OMP_NUM_THREADS=${QTHREADS:-$(( $(nproc) / streams ))} timeout $(( end - $(date +%s) )) python3 acdc_quality.py --folds "$mine" \
      --rows "${ROWS:-full,partial,size+centroid-barrier}" \
      --extra-rows "${EXTRA-size-barrier,size+centroid-quad,size+centroid-barrier+crf,oracle-quad,size-quad}" \
      --extra-folds "$extra_folds" --device "$DEVICE" --size "${QSIZE:-256}" --width 16 --batch "${QBATCH:-32}" \
      --steps "$STEPS" --workers "${WORKERS:-12}" --penalty-warmup "${WARMUP:-0}" --crf-weight "${CRF:-0}" \
      --tta "${TTA:-1,8}" \
      ${QFLAGS:-} --deadline "$end" --out "$OUT/quality.jsonl" > "$OUT/$name" 2>&1 &
  done
  wait
  cat "$OUT"/quality*.txt
fi
log done
