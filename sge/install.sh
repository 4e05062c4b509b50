#!/bin/bash
# One-time install + configuration of a single-node Grid Engine (Debian bookworm
# packages gridengine-* 8.1.9, i.e. Son of Grid Engine) on this host.
# Idempotent: safe to re-run. Must run as root.
set -euo pipefail
H=$(hostname)
HERE=$(cd "$(dirname "$0")" && pwd)
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
COMMON=$SGE_ROOT/$SGE_CELL/common

if ! dpkg -s gridengine-master gridengine-exec gridengine-client >/dev/null 2>&1; then
  apt-get update
  for p in gridengine-common gridengine-master gridengine-client; do
    echo "$p shared/gridenginemaster string $H"
    echo "$p shared/gridengineconfig boolean true"
    echo "$p shared/gridenginecell string default"
  done | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y \
      gridengine-master gridengine-exec gridengine-client
fi

# /etc/hosts maps the hostname to 127.0.0.1 after "localhost", so reverse lookups
# give "localhost" and commlib refuses clients ("client IP resolved to host name
# localhost. This is not identical to clients host name vm"). Tell SGE they are one host.
echo "$H localhost $(awk '$1=="127.0.0.1"{for(i=2;i<=NF;i++) if($i!="localhost" && $i!="'"$H"'") printf "%s ", $i}' /etc/hosts)" \
  > $COMMON/host_aliases
chown sgeadmin:sgeadmin $COMMON/host_aliases

"$HERE/start.sh"

TMP=$(mktemp -d); cd "$TMP"
# global config: allow root (uid/gid 0) jobs, flush accounting every second
qconf -sconf global | sed -e 's/^min_uid .*/min_uid                      0/' \
    -e 's/^min_gid .*/min_gid                      0/' \
    -e 's/flush_time=[0-9:]*/flush_time=00:00:01/' > global
qconf -Mconf global
# scheduler: run every second
qconf -ssconf | sed -e 's/^schedule_interval .*/schedule_interval                 0:0:1/' \
    -e 's/^flush_submit_sec .*/flush_submit_sec                  1/' \
    -e 's/^flush_finish_sec .*/flush_finish_sec                  1/' > sched.conf
qconf -Msconf sched.conf
qconf -as "$H" || true            # submit host (admin host is set by the package)
# exec host: sge_execd registers itself on first start; wait for it
for i in $(seq 1 30); do qconf -sel 2>/dev/null | grep -qx "$H" && break; sleep 1; done
# one queue, 2 slots
if ! qconf -sql 2>/dev/null | grep -qx all.q; then
  qconf -sq | sed -e 's/^qname .*/qname                 all.q/' \
      -e "s/^hostlist .*/hostlist              $H/" \
      -e 's/^slots .*/slots                 2/' \
      -e 's/^pe_list .*/pe_list               NONE/' \
      -e 's/^load_thresholds .*/load_thresholds       NONE/' > q.conf
  qconf -Aq q.conf
fi
# execd caches min_uid at start: restart it so the new global config applies
"$HERE/stop.sh" exec
"$HERE/start.sh"
qmod -cq all.q >/dev/null 2>&1 || true
cd /; rm -rf "$TMP"
qstat -f
