#!/usr/bin/env bash
# Start a small PostgreSQL cluster ("tmsmall", port 5434, max_connections=20)
# and PgBouncer in transaction pooling mode in front of it (port 6434), for
# tests of many jobs against few database connections. The main cluster on
# 5432 is not touched. Installs pgbouncer with apt if it is missing.
# Idempotent: what runs with the right settings is left alone.
# Needs root. Usage: sudo slurm/multinode/pgbouncer_start.sh
#   env: TMAPS_PG_SMALL_MAX_CONNECTIONS (default 20)
# Then: postgresql://postgres@127.0.0.1:6434/DB through PgBouncer,
#       postgresql://postgres@127.0.0.1:5434/DB directly (admin: CREATE DATABASE).
set -euo pipefail

[[ $EUID -eq 0 ]] || { echo "pgbouncer_start.sh: must run as root" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
name=tmsmall
pgport=5434
port=6434
max_connections=${TMAPS_PG_SMALL_MAX_CONNECTIONS:-20}
etc=/etc/tmaps-pgbouncer
say() { echo "pgbouncer_start.sh: $*"; }

# --- packages ---------------------------------------------------------------
missing=()
for p in postgresql pgbouncer; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# the newest installed PostgreSQL major version
version=$(ls /usr/lib/postgresql | sort -n | tail -1)

# --- the small PostgreSQL cluster ---------------------------------------------
if ! pg_lsclusters -h | awk '{print $1 "/" $2}' | grep -qx "$version/$name"; then
    say "creating PostgreSQL $version cluster $name on port $pgport"
    # manual: not started at boot by the init script; trust on 127.0.0.1 as the
    # main test cluster has (a test machine, nothing else listens there)
    pg_createcluster -q --port "$pgport" --start-conf manual \
        -o "max_connections=$max_connections" \
        "$version" "$name" -- --auth-host=trust --auth-local=trust >/dev/null
fi
current=$(pg_conftool -s "$version" "$name" postgresql.conf show max_connections 2>/dev/null || true)
restart=0
if [[ $current != "$max_connections" ]]; then
    pg_conftool "$version" "$name" postgresql.conf set max_connections "$max_connections"
    restart=1
fi
status=$(pg_lsclusters -h | awk -v v="$version" -v n="$name" '$1 == v && $2 == n {print $4}')
if [[ $status != online ]]; then
    pg_ctlcluster "$version" "$name" start
elif ((restart)); then
    say "max_connections changed to $max_connections: restarting $name"
    pg_ctlcluster "$version" "$name" restart
fi
for _ in $(seq 60); do pg_isready -q -h 127.0.0.1 -p "$pgport" && break; sleep 0.5; done
pg_isready -q -h 127.0.0.1 -p "$pgport" ||
    { echo "pgbouncer_start.sh: PostgreSQL $name does not answer on $pgport" >&2; exit 1; }

# --- PgBouncer ------------------------------------------------------------------
install -d -o postgres -g postgres -m 0755 "$etc"
new=$(sed -e "s/@PGPORT@/$pgport/g" -e "s/@PORT@/$port/g" "$here/pgbouncer.ini.in")
changed=0
if [[ "$new" != "$(cat "$etc/pgbouncer.ini" 2>/dev/null)" ]]; then
    printf '%s\n' "$new" > "$etc/pgbouncer.ini"
    changed=1
fi
# trust still wants the user listed; no password
printf '"postgres" ""\n' > "$etc/userlist.txt"
chown postgres:postgres "$etc/pgbouncer.ini" "$etc/userlist.txt"
chmod 0640 "$etc/userlist.txt"

pidfile=/run/postgresql/tmaps-pgbouncer.pid
install -d -o postgres -g postgres -m 2775 /run/postgresql
alive() { local pid; pid=$(cat "$pidfile" 2>/dev/null) && [[ -n $pid ]] &&
          [[ $(cat "/proc/$pid/comm" 2>/dev/null) == pgbouncer* ]]; }
if alive && ((changed)); then
    say "configuration changed: restarting PgBouncer"
    "$here/pgbouncer_stop.sh" --keep-postgres >/dev/null
fi
if ! alive; then
    # room for max_client_conn clients plus the server connections
    ulimit -n 8192
    # PgBouncer refuses to run as root
    runuser -u postgres -- pgbouncer -d -q "$etc/pgbouncer.ini"
fi
for _ in $(seq 60); do pg_isready -q -h 127.0.0.1 -p "$port" -d postgres && break; sleep 0.2; done
if ! psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
    echo "pgbouncer_start.sh: PgBouncer does not answer on $port (/var/log/postgresql/tmaps-pgbouncer.log)" >&2
    exit 1
fi
say "PostgreSQL $name on $pgport (max_connections=$max_connections), PgBouncer (transaction pooling) on $port"
