#!/usr/bin/env bash
# A one-node Slurm cluster on 127.0.0.1 for tests: munged, slurmctld and slurmd with a generated
# slurm.conf in DIR. No cgroups (proctrack/linuxproc, task/none), so it runs in containers.
#   local_cluster.sh start DIR    -> prints "export SLURM_CONF=DIR/slurm.conf"
#   local_cluster.sh stop DIR
set -euo pipefail
cmd=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
conf=$dir/slurm.conf

stop() {
  for f in slurmd.pid slurmctld.pid; do
    [ -f "$dir/$f" ] && kill "$(cat "$dir/$f")" 2>/dev/null || true
  done
  [ -f "$dir/munged.pid" ] && kill "$(cat "$dir/munged.pid")" 2>/dev/null || true
  sleep 1
}

if [ "$cmd" = stop ]; then
  stop
  exit 0
fi

host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
cat >"$conf" <<CONF
ClusterName=distnet-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF

# munge: a key of our own and a socket in DIR, so no system service is touched.
[ -f "$dir/munge/munge.key" ] || dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 0400 "$dir/munge/munge.key"
socket=$dir/munge/munge.socket
munged --force --key-file="$dir/munge/munge.key" --socket="$socket" \
  --pid-file="$dir/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/seed"
export SLURM_CONF=$conf
# Slurm's munge plugins find the socket through this option in the conf.
sed -i "s|^AuthType=auth/munge|AuthType=auth/munge\nAuthInfo=socket=$socket|" "$conf"
sed -i "s|^CredType=cred/munge|CredType=cred/munge|" "$conf"
fail() {  # one line naming what failed, then the end of the daemons' logs
  echo "local_cluster: error: $1; logs in $dir" >&2
  tail -5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 2>/dev/null || true
  exit 1
}
slurmctld -f "$conf" || fail "slurmctld did not start"
# Slurm 22.05's slurmd loads a cgroup plugin even with proctrack/linuxproc and task/none, so it
# needs a mounted cgroup file system (every systemd machine has one; a bare chroot does not).
slurmd -f "$conf" || fail "slurmd did not start$(mountpoint -q /sys/fs/cgroup || echo " (no cgroup file system is mounted on /sys/fs/cgroup, which slurmd needs)")"
for _ in $(seq 60); do
  if sinfo -h -o %t 2>/dev/null | grep -qE "^idle"; then
    echo "export SLURM_CONF=$conf"
    exit 0
  fi
  sleep 1
done
fail "the node did not become idle within 60 s"
