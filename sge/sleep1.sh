#!/bin/sh
#$ -S /bin/sh
#$ -cwd
#$ -N sleep1
echo "task $SGE_TASK_ID on $(hostname) at $(date +%T)"
sleep 1
exit $((SGE_TASK_ID % 3))
