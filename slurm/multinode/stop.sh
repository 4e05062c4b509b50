#!/usr/bin/env bash
# Stop the four-node cluster of slurm/multinode/start.sh: its four slurmd,
# then its slurmctld. munged stays (the single-node cluster of slurm/ uses it
# too), and so does the single-node cluster. Jobs are kept, as with
# slurm/stop.sh; with --purge the cluster's saved jobs are dropped as well.
# Needs root. Usage: sudo slurm/multinode/stop.sh [--purge]
set -euo pipefail

[[ $EUID -eq 0 ]] || { echo "stop.sh: must run as root" >&2; exit 1; }
purge=0
case ${1:-} in
    --purge) purge=1 ;;
    "") ;;
    *) echo "usage: stop.sh [--purge]" >&2; exit 2 ;;
esac

# SIGTERM the pid in $1 if it is a live $2 (named $3), and wait up to 30 s.
stop() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || { echo "stop.sh: $3 not running"; return 0; }
    if [[ $(cat "/proc/$pid/comm" 2>/dev/null) != "$2"* ]]; then
        echo "stop.sh: $3 not running (stale $1)"; rm -f "$1"; return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 300); do [[ -d /proc/$pid ]] || { echo "stop.sh: $3 stopped"; return 0; }; sleep 0.1; done
    echo "stop.sh: $3 (pid $pid) did not exit within 30 s" >&2
    return 1
}

for n in n1 n2 n3 n4; do stop "/run/slurmd-multi-$n.pid" slurmd "slurmd $n"; done
stop /run/slurmctld-multi.pid slurmctld slurmctld
if ((purge)); then
    rm -rf /var/spool/slurmctld-multi/*
    echo "stop.sh: saved jobs dropped"
fi
