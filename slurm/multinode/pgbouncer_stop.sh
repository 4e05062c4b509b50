#!/usr/bin/env bash
# Stop the PgBouncer and the small PostgreSQL cluster of pgbouncer_start.sh.
# The main PostgreSQL cluster (5432) is not touched.
# Needs root. Usage: sudo slurm/multinode/pgbouncer_stop.sh [--keep-postgres | --drop]
#   --keep-postgres  stop PgBouncer only
#   --drop           also delete the small cluster and its data
set -euo pipefail

[[ $EUID -eq 0 ]] || { echo "pgbouncer_stop.sh: must run as root" >&2; exit 1; }
mode=${1:-}
case $mode in
    ""|--keep-postgres|--drop) ;;
    *) echo "usage: pgbouncer_stop.sh [--keep-postgres | --drop]" >&2; exit 2 ;;
esac
name=tmsmall
pidfile=/run/postgresql/tmaps-pgbouncer.pid
say() { echo "pgbouncer_stop.sh: $*"; }

pid=$(cat "$pidfile" 2>/dev/null || true)
if [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == pgbouncer* ]]; then
    kill -TERM "$pid"   # immediate shutdown: clients are cut off
    for _ in $(seq 100); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    [[ -d /proc/$pid ]] && { echo "pgbouncer_stop.sh: PgBouncer (pid $pid) did not exit" >&2; exit 1; }
    say "PgBouncer stopped"
else
    say "PgBouncer not running"
fi
[[ $mode == --keep-postgres ]] && exit 0

command -v pg_lsclusters >/dev/null || exit 0
read -r version status < <(pg_lsclusters -h | awk -v n="$name" '$2 == n {print $1, $4}') || true
if [[ -z ${version:-} ]]; then
    say "no PostgreSQL cluster $name"
    exit 0
fi
if [[ $status == online ]]; then
    pg_ctlcluster -m fast "$version" "$name" stop
    say "PostgreSQL $name stopped"
fi
if [[ $mode == --drop ]]; then
    pg_dropcluster "$version" "$name"
    say "PostgreSQL $name deleted"
fi
