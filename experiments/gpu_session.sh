#!/usr/bin/env bash
# One lent-GPU session's checks and figures in one go (the device tool's budget is minutes):
# the GPU tests of the CUDA-graph and population paths, then population trials/hour against
# solo graphed trials at PTB-small shapes (B20 H200 T20, the Zaremba small preset) and at the
# JSB main job's shapes. Everything goes to $OUT (default ./gpu_out).
#
# Prepare on a machine with the package index (the GPU machine has none), then carry .whl:
#   pip download --dest .whl optuna wandb
#   (device) run: bash experiments/gpu_session.sh     carry: [".whl"]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_out}"
mkdir -p "$OUT"
log() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$OUT/session.log"; }

log "machine"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  git rev-parse --short HEAD 2>/dev/null; date -u; } 2>&1 | tee -a "$OUT/session.log"
if [ -d .whl ]; then
  python -m pip install -q --no-index --find-links .whl optuna wandb 2>&1 | tail -2
fi
python -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" WANDB_MODE=disabled

log "GPU tests"
timeout 240 python -m pytest -q -p no:cacheprovider -m gpu tests/test_graphs.py \
  tests/test_population.py tests/test_population_graph.py 2>&1 | tail -15 | tee "$OUT/gpu_tests.txt"

log "populations, PTB-small shapes (graphed population against graphed solo trials)"
timeout 240 python experiments/population_bench.py --config configs/experiment/zaremba_small.yaml \
  --set trainer.accelerator=gpu --cells lstm --ks 1 8 32 64 --steps 200 --max-solo 2 \
  2>&1 | grep -v -i warn | tee "$OUT/population_ptb.txt"

log "populations, JSB main-job shapes (padded batches: eager steps)"
timeout 180 python experiments/population_bench.py --set trainer.accelerator=gpu \
  --cells lstm gru --ks 1 16 64 --steps 40 --max-solo 2 \
  2>&1 | grep -v -i warn | tee "$OUT/population_jsb.txt"
log "done"
