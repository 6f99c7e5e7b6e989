#!/usr/bin/env bash
# Every GPU figure in one device call; results land in $OUT as they are made.
# Order: throughput vs the seed baseline, interactive speed, the 5-fold quality table (main rows),
# then extra rows on fold 1 while time is left (--deadline skips runs that would overrun).
# Needs .carry/acdc256.npz (benchmarks/acdc_prep.py) and .carry/seed_baseline.py.
# DEVICE=cpu STEPS=5 ... runs the same path on a CPU as a dry run. Knobs: PARTS, STEPS, BUDGET,
# ROWS / EXTRA (EXTRA= for none) / FOLDS / WARMUP / CRF / QFLAGS (quality; CRF = the +crf rows' weight,
# QFLAGS more acdc_quality.py flags, e.g. "--rotate 20", "--position-bins 3", "--seed 1"),
# IVOLS / IBUDGETS / IFLAGS / ITIMEOUT (interactive), TP_* (throughput).
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
# Interactive settings, '|'-separated, each run as its own process (each pays the device's set-up once):
# the plugin's defaults after its background warm-up (the first press of a fresh process), one
# press sized to the budget on this device at 96² batch 16, and the defaults' press followed by
# one round of simulated correction strokes and a second press (fix_ columns).
IFLAGS=${IFLAGS:-"--warm-up --steps 300|--batch 16 --steps-for-seconds 13.5|--steps 300 --budgets 15 --corrections"}
if has interactive; then
  IFS='|' read -ra iconfigs <<< "$IFLAGS"
  for flags in "${iconfigs[@]}"; do
    log "interactive $flags" && echo "# interactive.py $flags" >> "$OUT/interactive.txt"
    timeout "${ITIMEOUT:-150}" python3 interactive.py --source pack --device "$DEVICE" --volumes "${IVOLS:-5}" \
      --budgets "${IBUDGETS:-5,15}" $flags 2>&1 | tee -a "$OUT/interactive.txt"
  done
fi
has quality && log quality && timeout $(( end - $(date +%s) )) python3 acdc_quality.py --folds "${FOLDS:-1,2,3,4,5}" --rows "${ROWS:-full,partial,size+centroid-barrier}" \
  --extra-rows "${EXTRA-size-barrier,size+centroid-quad,size+centroid-barrier+crf,oracle-quad,size-quad}" --extra-folds 1 \
  --device "$DEVICE" --size "${QSIZE:-256}" --width 16 --batch "${QBATCH:-32}" --steps "$STEPS" --workers "${WORKERS:-12}" \
  --penalty-warmup "${WARMUP:-0}" --crf-weight "${CRF:-0}" ${QFLAGS:-} --deadline "$end" --out "$OUT/quality.jsonl" 2>&1 | tee -a "$OUT/quality.txt"
log done
