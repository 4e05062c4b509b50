#!/usr/bin/env bash
# Start a four-node SLURM cluster on this machine: one slurmctld and four
# slurmd (nodes n1..n4, each its own port, spool, pid and log file), beside
# the single-node cluster of slurm/ (which keeps running; both share munged).
# Idempotent: running daemons are left alone unless the configuration
# changed, in which case this cluster's daemons are restarted.
# Needs root. Usage: sudo slurm/multinode/start.sh
#   env: SLURM_MULTI_CPUS (CPUs declared per node, default 128),
#        SLURM_MULTI_MEM_MB (memory declared per node, default 512000)
# Clients reach it with: export SLURM_CONF=/etc/slurm-multi/slurm.conf
set -euo pipefail

[[ $EUID -eq 0 ]] || { echo "start.sh: must run as root" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
confdir=/etc/slurm-multi
conf=$confdir/slurm.conf
nodes=(n1 n2 n3 n4)
"$here/../install.sh" >/dev/null   # packages, munge key and directories

host=$(hostname -s)
# Declared, not measured (SlurmdParameters=config_overrides): the nodes may
# promise more than the machine has, so that many small jobs run at once.
cpus=${SLURM_MULTI_CPUS:-128}
mem=${SLURM_MULTI_MEM_MB:-512000}

# One NodeName line per node: all on this host, each slurmd on its own port.
node_lines() {
    local i
    for i in "${!nodes[@]}"; do
        printf 'NodeName=%s NodeHostname=%s NodeAddr=127.0.0.1 Port=%d CPUs=%d RealMemory=%d State=UNKNOWN\n' \
            "${nodes[$i]}" "$host" $((6931 + i)) "$cpus" "$mem"
    done
}
new=$(sed -e "s/@HOST@/$host/g" -e "s/@DEFMEM@/$((mem / cpus))/g" "$here/slurm.conf.in")
new=${new/$'\n@NODES@\n'/$'\n'$(node_lines)$'\n'}

# pid file names a live process with the expected name (not a reused pid).
alive() { local pid; pid=$(cat "$1" 2>/dev/null) && [[ -n $pid ]] &&
          [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2"* ]]; }
any_alive() {
    local n
    alive /run/slurmctld-multi.pid slurmctld && return 0
    for n in "${nodes[@]}"; do alive "/run/slurmd-multi-$n.pid" slurmd && return 0; done
    return 1
}

install -d -o root -g root -m 0755 "$confdir"
if [[ "$new" != "$(cat "$conf" 2>/dev/null)" ]]; then
    if any_alive; then
        echo "start.sh: $conf changed, restarting the four-node cluster"
        "$here/stop.sh"
    fi
    printf '%s\n' "$new" > "$conf"
    chmod 0644 "$conf"
fi
# slurmctld runs as SlurmUser and owns its state; each slurmd (root) its spool.
install -d -o slurm -g slurm -m 0755 /var/spool/slurmctld-multi /var/log/slurm
for n in "${nodes[@]}"; do install -d -o root -g root -m 0755 "/var/spool/slurmd-multi/$n"; done

# munged is shared with the single-node cluster: start it only if it is not answering.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
fi
alive /run/slurmctld-multi.pid slurmctld || slurmctld -f "$conf"
for n in "${nodes[@]}"; do
    alive "/run/slurmd-multi-$n.pid" slurmd || slurmd -f "$conf" -N "$n"
done

# Nodes register as "unknown" and turn idle within a second or two; a node that
# was set down or drained before (a node-loss test) is resumed.
export SLURM_CONF=$conf
for _ in $(seq 60); do
    states=$(sinfo -h -N -o '%N %t' 2>/dev/null || true)
    ready=0
    while read -r node state; do
        case $state in
            idle|mix|alloc|comp) ready=$((ready + 1)) ;;
            down*|drain*|drng*|fail*) scontrol update NodeName="$node" State=RESUME 2>/dev/null || true ;;
        esac
    done <<<"$states"
    if ((ready == ${#nodes[@]})); then
        echo "start.sh: nodes ${nodes[*]} are up ($cpus CPUs, $mem MB each); use SLURM_CONF=$conf"
        exit 0
    fi
    sleep 0.5
done
echo "start.sh: not all nodes are ready:" >&2
echo "${states:-slurmctld does not answer}" >&2
echo "see /var/log/slurm/multi-*.log" >&2
exit 1
