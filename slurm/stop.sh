#!/usr/bin/env bash
# Stop slurmd, slurmctld and munged (that order: each needs the next to
# shut down cleanly). Jobs are not cancelled: their state is saved and
# start.sh picks them up again; run `scancel --user=$USER` first to drop them.
# Needs root. Usage: sudo slurm/stop.sh
set -euo pipefail

# Send SIGTERM to the pid in $1 if it is a live $2, and wait up to 30 s.
stop() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || { echo "stop.sh: $2 not running"; return 0; }
    if [[ $(cat "/proc/$pid/comm" 2>/dev/null) != "$2"* ]]; then
        echo "stop.sh: $2 not running (stale $1)"; rm -f "$1"; return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 300); do [[ -d /proc/$pid ]] || { echo "stop.sh: $2 stopped"; return 0; }; sleep 0.1; done
    echo "stop.sh: $2 (pid $pid) did not exit within 30 s" >&2
    return 1
}

stop /run/slurmd.pid slurmd
stop /run/slurmctld.pid slurmctld
if [[ -S /run/munge/munge.socket.2 ]] && munge -n >/dev/null 2>&1; then
    munged --stop && echo "stop.sh: munged stopped"
else
    echo "stop.sh: munged not running"
fi
