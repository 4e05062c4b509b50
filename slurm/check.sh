#!/usr/bin/env bash
# Is the single-node cluster up and taking jobs? Prints one line; exit 0 if
# the node is idle/mixed/allocated, 1 otherwise (with the reason).
# Needs no root. Usage: slurm/check.sh
set -euo pipefail

fail() { echo "slurm: down: $*"; exit 1; }

command -v sinfo >/dev/null || fail "sinfo not installed (run slurm/install.sh)"
[[ -r /etc/slurm/slurm.conf ]] || fail "no /etc/slurm/slurm.conf (run slurm/start.sh)"
munge -n >/dev/null 2>&1 || fail "munged not answering (/var/log/munge/munged.log)"
# timeout: sinfo waits MessageTimeout per try when slurmctld is gone.
if ! out=$(timeout 15 sinfo -h -N -o '%N %t %C %E' 2>&1); then
    fail "slurmctld not answering: $(head -1 <<<"$out") (/var/log/slurm/slurmctld.log)"
fi
[[ -n $out ]] || fail "sinfo lists no nodes"
read -r node state cpus reason <<<"$(head -1 <<<"$out")"
case $state in
    idle|mix|alloc|comp)
        echo "slurm: up: node $node $state, CPUs alloc/idle/other/total $cpus, $(squeue -h | wc -l) jobs queued or running" ;;
    *) fail "node $node is $state${reason:+ ($reason)} (/var/log/slurm/slurmd.log)" ;;
esac
