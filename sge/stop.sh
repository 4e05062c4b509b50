#!/bin/bash
# Stop sge_execd and sge_qmaster. "stop.sh exec" stops only the execd.
# Spool/config/accounting are kept (in /var/spool/gridengine and /var/lib/gridengine).
# (The Debian init scripts' "stop" does not find sge_qmaster under gVisor/this setup,
#  so use SGE's own shutdown requests, then fall back to the spool pid files.)
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
waitgone() { for i in $(seq 1 30); do pgrep -x "$1" >/dev/null || return 0; sleep 1; done; return 1; }
if pgrep -x sge_execd >/dev/null; then
  qconf -ke "$(hostname)" 2>/dev/null
  waitgone sge_execd || { kill "$(cat /var/run/gridengine/execd.pid)"; waitgone sge_execd; }
fi
[ "${1:-}" = exec ] && exit 0
if pgrep -x sge_qmaster >/dev/null; then
  qconf -km 2>/dev/null
  waitgone sge_qmaster || { kill "$(cat /var/spool/gridengine/qmaster/qmaster.pid)"; waitgone sge_qmaster; }
fi
if pgrep -a sge_; then echo "still running" >&2; exit 1; else echo "stopped"; fi
