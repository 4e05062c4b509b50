#!/usr/bin/env bash
# Measure scheduling overhead: submit an array of N tasks that each sleep S
# seconds on 1 core, wait until all are done, and compare the wall time with
# the ideal N*S/cores. Also reports the most tasks seen running at once.
# Usage: slurm/bench.sh [N=20] [S=1] [THROTTLE=4]
set -euo pipefail

n=${1:-20} s=${2:-1} throttle=${3:-4}
cores=$(sinfo -h -o %c | head -1)
dir=$(mktemp -d /tmp/slurm-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT

t0=$(date +%s.%N)
job=$(sbatch --parsable --array="0-$((n - 1))%$throttle" --cpus-per-task=1 --mem=100M \
        --output=/dev/null --chdir="$dir" \
        --wrap="date +%s.%N > start.\$SLURM_ARRAY_TASK_ID; sleep $s; date +%s.%N > end.\$SLURM_ARRAY_TASK_ID")
# Completion is seen from the tasks' own files, not by polling squeue.
until [[ $(find "$dir" -name 'end.*' | wc -l) -ge $n ]]; do sleep 0.05; done
t1=$(date +%s.%N)

# Peak concurrency: sweep over start (+1) and end (-1) events in time order.
peak=$(for i in $(seq 0 $((n - 1))); do
           echo "$(cat "$dir/start.$i") 1"; echo "$(cat "$dir/end.$i") -1"; done |
       sort -g | awk '{c += $2; if (c > m) m = c} END {print m}')
first=$(cat "$dir"/start.* | sort -g | head -1)
awk -v n="$n" -v s="$s" -v c="$cores" -v t0="$t0" -v t1="$t1" -v f="$first" -v p="$peak" -v j="$job" 'BEGIN {
    ideal = n * s / (c < n ? c : n); wall = t1 - t0
    printf "job %s: %d tasks x %gs on %d cores: wall %.1fs, ideal %.1fs, overhead %.1fs (%.2fs/task), first start after %.2fs, peak %d running\n",
           j, n, s, c, wall, ideal, wall - ideal, (wall - ideal) / n, f - t0, p }'
