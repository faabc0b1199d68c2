#!/usr/bin/env bash
# One `rnnbench study worker` per SLURM array task, pinned to the GPU(s) SLURM gave it.
#
#   export RNNBENCH_STORAGE=postgresql+psycopg://user:pw@db-host:5432/rnnbench
#   export RNNBENCH_STUDY=jsb_chung2014
#   RNNBENCH_LAUNCH=configs/study/jsb_chung2014.yaml \
#       sbatch --array=0-7 experiments/slurm_study.sh [study.trials_per_variant=50 ...]
#
# Every array task joins study $RNNBENCH_STUDY in $RNNBENCH_STORAGE and trains waiting trials
# until every variant's budget is spent. With RNNBENCH_LAUNCH=STUDY.yaml, the first array
# task runs `rnnbench study run STUDY.yaml --workers 1 [overrides]` instead: it creates (or
# resumes) the study, trains with one local worker like the others and writes the results
# when the budget is spent. Without it, start the study yourself (`rnnbench study run`); the
# workers wait for it (RNNBENCH_WAIT).
#
# Environment (sbatch passes yours on):
#   RNNBENCH_STORAGE          storage URL, required. Read from the environment and handed to
#                             rnnbench in its environment: never on a command line (ps, sacct)
#   RNNBENCH_STUDY            study name, required (a launcher task takes it from its file)
#   RNNBENCH_LAUNCH           study file: the first array task is the launcher
#   RNNBENCH_GPUS_PER_WORKER  GPUs per worker = the study's trainer.devices (default 1)
#   RNNBENCH_WAIT             seconds a worker waits for the study to appear (default 900)
#   RNNBENCH_OUTPUT           folder for trial logs (default {logging.dir}/{name} in the
#                             submission folder)
#
# GPUs: the task's GPUs are CUDA_VISIBLE_DEVICES as SLURM set it, else 0..SLURM_GPUS_ON_NODE-1;
# the worker takes RNNBENCH_GPUS_PER_WORKER of them, the SLURM_LOCALID-th group (so several
# srun tasks of one job on one node split the node's GPUs), and is pinned to exactly those
# with CUDA_VISIBLE_DEVICES. Threads: SLURM_CPUS_PER_TASK split over the worker's training
# processes (a DDP trial runs one per GPU). No GPU: a CPU worker.
#
#SBATCH --job-name=rnnbench-study
#SBATCH --ntasks=1
#SBATCH --gpus=1
#SBATCH --cpus-per-task=8
#SBATCH --time=12:00:00
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail

die() { echo "slurm_study.sh: $*" >&2; exit 2; }

[ -n "${RNNBENCH_STORAGE:-}" ] || die "set RNNBENCH_STORAGE to the study storage URL"
per="${RNNBENCH_GPUS_PER_WORKER:-1}"
[[ "$per" =~ ^[1-9][0-9]*$ ]] || die "RNNBENCH_GPUS_PER_WORKER must be a positive integer"
task="${SLURM_ARRAY_TASK_ID:-0}"
first="${SLURM_ARRAY_TASK_MIN:-0}"
launch=""
if [ -n "${RNNBENCH_LAUNCH:-}" ] && [ "$task" = "$first" ]; then
  launch="$RNNBENCH_LAUNCH"
fi
[ -n "$launch" ] || [ -n "${RNNBENCH_STUDY:-}" ] || die "set RNNBENCH_STUDY to the study name"

# ---- GPUs: what SLURM gave this task, then this task's share of it
gpus=()
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ] && [ "$CUDA_VISIBLE_DEVICES" != NoDevFiles ]; then
  IFS=, read -r -a gpus <<< "$CUDA_VISIBLE_DEVICES"
elif [[ "${SLURM_GPUS_ON_NODE:-0}" =~ ^[1-9][0-9]*$ ]]; then
  mapfile -t gpus < <(seq 0 $((SLURM_GPUS_ON_NODE - 1)))
fi
procs=1
if [ "${#gpus[@]}" -gt 0 ]; then
  slot="${SLURM_LOCALID:-0}"
  start=$((slot * per))
  if [ $((start + per)) -gt "${#gpus[@]}" ]; then
    die "task ${slot} on $(hostname) needs GPUs $((start + 1))-$((start + per)) of the" \
        "${#gpus[@]} it sees (${gpus[*]}); ask SLURM for ${per} GPU(s) per task"
  fi
  mine="$(IFS=,; echo "${gpus[*]:start:per}")"
  export CUDA_VISIBLE_DEVICES="$mine"
  procs="$per"
fi

# ---- threads: the task's cores split over its training processes
threads=()
if [[ "${SLURM_CPUS_PER_TASK:-}" =~ ^[1-9][0-9]*$ ]]; then
  n=$((SLURM_CPUS_PER_TASK / procs))
  [ "$n" -ge 1 ] || n=1
  export OMP_NUM_THREADS="$n" MKL_NUM_THREADS="$n" OPENBLAS_NUM_THREADS="$n"
  threads=(--threads "$n")
fi

# A worker is one process, not a SLURM task layout: with SLURM_NTASKS set, Lightning would
# take a multi-GPU trial for a multi-task SLURM job and wait for ranks that never come.
unset SLURM_NTASKS

# The storage URL stays in the environment. An older rnnbench that reads no RNNBENCH_STORAGE
# gets it as --storage, which ps can show: say so.
storage=()
if ! rnnbench study worker --help 2>/dev/null | grep -q RNNBENCH_STORAGE; then
  echo "slurm_study.sh: this rnnbench reads no RNNBENCH_STORAGE; passing the URL as" \
       "--storage (visible to ps on $(hostname))" >&2
  storage=(--storage "$RNNBENCH_STORAGE")
fi

echo "slurm_study.sh: array task ${task} on $(hostname):" \
     "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-(none)}, threads ${threads[1]:-default}" \
     "${launch:+(launcher of $launch)}" >&2
if [ -n "$launch" ]; then
  exec rnnbench study run "$launch" --workers 1 --no-live "${storage[@]}" "$@"
fi
output=()
[ -z "${RNNBENCH_OUTPUT:-}" ] || output=(--output "$RNNBENCH_OUTPUT")
exec rnnbench study worker --study "$RNNBENCH_STUDY" --wait "${RNNBENCH_WAIT:-900}" \
  "${threads[@]}" "${storage[@]}" "${output[@]}"
