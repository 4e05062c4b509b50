#!/bin/bash
# Start sge_qmaster (which also runs the scheduler thread) and sge_execd.
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
pgrep -x sge_qmaster >/dev/null || /etc/init.d/gridengine-master start
for i in $(seq 1 30); do qstat >/dev/null 2>&1 && break; sleep 1; done
pgrep -x sge_execd >/dev/null || /etc/init.d/gridengine-exec start
for i in $(seq 1 30); do qhost 2>/dev/null | awk 'NR>3 && $2!="-"{f=1} END{exit !f}' && break; sleep 1; done
pgrep -a -x sge_qmaster; pgrep -a -x sge_execd
