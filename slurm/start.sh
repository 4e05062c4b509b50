#!/usr/bin/env bash
# Start the single-node SLURM cluster: munged, slurmctld, slurmd, each as a
# plain daemon (no systemd here), then wait until the node takes jobs.
# Idempotent: running daemons are left alone unless slurm.conf changed, in
# which case all are restarted (some settings, e.g. SelectType, need that).
# Needs root. Usage: sudo slurm/start.sh   (env: SLURM_CPUS, SLURM_MEM_MB)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
conf=/etc/slurm/slurm.conf
"$here/install.sh"   # fast when done; also recreates /run/munge after a reboot

host=$(hostname -s)
cpus=${SLURM_CPUS:-$(nproc)}
total=$(free -m | awk '/^Mem:/ {print $2}')
# Leave room for the OS and the daemons: slurmd drains a node whose
# RealMemory is above what it measures, so we stay clearly below.
margin=$(( total / 10 > 512 ? total / 10 : 512 ))
mem=${SLURM_MEM_MB:-$(( total - margin ))}
new=$(sed -e "s/@HOST@/$host/g" -e "s/@CPUS@/$cpus/g" -e "s/@MEM@/$mem/g" \
          -e "s/@DEFMEM@/$(( mem / cpus ))/g" "$here/slurm.conf.in")

# pid file names a live process with the expected name (not a reused pid).
alive() { local pid; pid=$(cat "$1" 2>/dev/null) && [[ -n $pid ]] &&
          [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2"* ]]; }

if [[ "$new" != "$(cat "$conf" 2>/dev/null)" ]]; then
    if alive /run/slurmctld.pid slurmctld || alive /run/slurmd.pid slurmd; then
        echo "start.sh: $conf changed, restarting the daemons"
        "$here/stop.sh"
    fi
    printf '%s\n' "$new" > "$conf"
    chmod 0644 "$conf"
fi

if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
fi
# slurmctld starts as root and drops to SlurmUser itself.
alive /run/slurmctld.pid slurmctld || slurmctld
alive /run/slurmd.pid slurmd || slurmd

# The node registers as "unknown" first; ReturnToService=2 makes it idle
# within a second or two. Resume it if it kept a down/drain state from before.
for _ in $(seq 60); do
    state=$(sinfo -h -n "$host" -o %t 2>/dev/null || true)
    case $state in
        idle|mix|alloc|comp) echo "start.sh: node $host is $state"; exit 0 ;;
        down*|drain*|drng*|fail*) scontrol update NodeName="$host" State=RESUME || true ;;
    esac
    sleep 0.5
done
echo "start.sh: node $host not ready (state '${state:-no answer}'); see /var/log/slurm/" >&2
exit 1
