#!/usr/bin/env bash
# Install SLURM (slurmctld, slurmd, client tools) and MUNGE for a single-node
# test cluster, and prepare the key and directories the daemons expect.
# Idempotent: with everything in place it only re-checks ownerships (< 1 s).
# Needs root. Usage: sudo slurm/install.sh
set -euo pipefail

[[ $EUID -eq 0 ]] || { echo "install.sh: must run as root" >&2; exit 1; }

pkgs=(slurm-wlm slurmctld slurmd slurm-client munge)
missing=()
for p in "${pkgs[@]}"; do
    # dpkg-query is fast and needs no network; only call apt when something lacks.
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "install.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # --no-install-recommends: skips mail servers and docs we do not need.
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

# Debian's postinst normally creates the key; make one if it did not (or was wiped).
if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge /etc/munge/munge.key
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key

# munged refuses group/world-writable dirs; /run is a tmpfs on most hosts, so
# recreate its runtime dir every time (systemd's RuntimeDirectory= does this normally).
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
install -d -o munge -g munge -m 0700 /var/log/munge
# slurmctld runs as SlurmUser=slurm and must own its state dir; slurmd runs as root.
install -d -o slurm -g slurm -m 0755 /var/spool/slurmctld /var/log/slurm
install -d -o root -g root -m 0755 /var/spool/slurmd /etc/slurm
echo "install.sh: slurm $(dpkg-query -W -f='${Version}' slurmctld) and munge ready"
