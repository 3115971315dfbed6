#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the workflow's SLURM test (needs root).
#   localhost_cluster.sh install   apt-get the Debian packages that are missing
#   localhost_cluster.sh start     write /etc/slurm/slurm.conf, start munged, slurmctld, slurmd
#   localhost_cluster.sh stop      stop the daemons
# Pitfalls (see the project's notes): slurm.conf must be a real file at /etc/slurm/slurm.conf
# (the job step plugin drops SLURM_CONF); munged is started with --force; proctrack/linuxproc
# and task/none need no cgroups; there is no accounting, so the executor plugin polls squeue.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)
STATE=/var/lib/dlearn-slurm

install() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

start() {
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc)
    mem_mb=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024))
    mkdir -p /etc/slurm "$STATE"/{ctld,d} /var/log/slurm /run/munge
    cat > /etc/slurm/slurm.conf <<CONF
ClusterName=dlearn-test
SlurmctldHost=${host}
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
StateSaveLocation=${STATE}/ctld
SlurmdSpoolDir=${STATE}/d
SlurmctldPidFile=${STATE}/slurmctld.pid
SlurmdPidFile=${STATE}/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
# Finished jobs stay visible to squeue for an hour: a slow run (loaded machine) must still see its first jobs.
MinJobAge=3600
MailProg=/bin/true
DefMemPerCPU=1000
SlurmUser=root
NodeName=${host} CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
CONF
    if [[ ! -s /etc/munge/munge.key ]]; then
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    fi
    chown -R munge:munge /etc/munge /run/munge 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
    pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged --force
    pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
    pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
    for _ in $(seq 60); do
        if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
            scontrol update NodeName="${host}" State=RESUME >/dev/null 2>&1 || true
            echo "slurm up: $(sinfo -h -o '%P %D %t %c CPUs %m MB')"
            return 0
        fi
        scontrol update NodeName="${host}" State=RESUME >/dev/null 2>&1 || true
        sleep 0.5
    done
    echo "slurm did not come up; see /var/log/slurm/" >&2
    tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
    return 1
}

stop() {
    pkill -x slurmd || true
    pkill -x slurmctld || true
    pkill -x munged || true
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
