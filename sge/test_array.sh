#!/bin/bash
# Submit a 10-task array of `sleep 1` (task i exits with i%3), wait, show qacct.
set -e
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
D=$(mktemp -d /tmp/sgetest.XXXX); cp "$(dirname "$(readlink -f "$0")")/sleep1.sh" "$D/"; cd "$D"
JID=$(qsub -terse -t 1-10 sleep1.sh | cut -d. -f1)
echo "job $JID submitted in $D"; qstat
while qstat | awk -v j="$JID" '$1==j{f=1} END{exit !f}'; do sleep 1; done
sleep 2   # accounting flush
cat sleep1.o"$JID".* | sort -k2 -n
qacct -j "$JID" | awk '/^taskid/{t=$2} /^failed/{f=$2} /^exit_status/{print "task",t,"failed",f,"exit_status",$2}' | sort -k2 -n
