#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for clipgan's Slurm tests and for trying
# the Slurm executor by hand: munge + slurmctld + slurmd from Debian's packages, its
# configuration and state in one folder (nothing written to /etc/slurm).
#
#   scripts/slurm-local.sh start    install the packages if missing (apt, as root), write
#                                   the config, start the daemons, wait until the node is idle
#   scripts/slurm-local.sh stop     stop the daemons (the folder stays, for the logs)
#   scripts/slurm-local.sh status   sinfo and squeue of the cluster
#   scripts/slurm-local.sh env      the line that points Slurm's commands at this cluster:
#                                   eval "$(scripts/slurm-local.sh env)"
#
# The folder is $CLIPGAN_SLURM_DIR (default /tmp/clipgan-slurm). slurmd must run as root,
# so `start` needs root (CI runs as root); without it the script says so and fails.
# The node claims 8 CPUs whatever the machine has (config_overrides), so that several
# tasks can run side by side on a 2-core CI machine, as they would on a cluster's nodes.
set -euo pipefail

DIR="${CLIPGAN_SLURM_DIR:-/tmp/clipgan-slurm}"
CONF="$DIR/slurm.conf"
PACKAGES=(munge slurmctld slurmd slurm-client)

say() { echo "slurm-local: $*" >&2; }

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        say "Slurm is not installed (missing Debian packages: ${missing[*]}); as root: apt install ${missing[*]}"
        return 1
    fi
    say "installing ${missing[*]} with apt"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; } ||
        { say "apt-get install ${missing[*]} failed"; return 1; }
}

write_config() {
    local host mem
    host="$(hostname -s)"
    mem="$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')"
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    cat > "$CONF.tmp" <<EOF
# Written by clipgan's scripts/slurm-local.sh: a one-node cluster on localhost.
ClusterName=clipgan-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=${CLIPGAN_SLURMCTLD_PORT:-6817}
SlurmdPort=${CLIPGAN_SLURMD_PORT:-6818}
# Containers and CI machines have no delegated cgroups: track processes by parent pid.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=sched_interval=1
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
# Jobs may be requeued (preemption, time limits) and keep their id.
JobRequeue=1
MinJobAge=600
KillWait=30
SlurmdParameters=config_overrides
NodeName=$host CPUs=8 RealMemory=${mem:-4096} State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
    # A client finds munged at its default socket; start one unless it answers already.
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
        chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
    fi
    if id munge >/dev/null 2>&1; then
        su -s /bin/sh munge -c munged 2>/dev/null || munged --force
    else
        munged --force
    fi
    for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.1; done
    say "munged did not start"; return 1
}

start() {
    [ "$(id -u)" = 0 ] || { say "start needs root (slurmd runs as root); run it with sudo"; exit 1; }
    install_packages
    write_config
    start_munge
    export SLURM_CONF="$CONF"
    running "$DIR/slurmctld.pid" || slurmctld -f "$CONF"
    running "$DIR/slurmd.pid" || slurmd -f "$CONF"
    local state=""
    for _ in $(seq 100); do
        state="$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)"
        case "$state" in idle|mixed|allocated) break ;; down*|drain*) scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true ;; esac
        sleep 0.2
    done
    case "$state" in
        idle|mixed|allocated) say "cluster up: node $(hostname -s) $state; $(env_line)" ;;
        *) say "the node did not become idle (state: ${state:-none}); logs in $DIR/log"; exit 1 ;;
    esac
}

stop() {
    local f
    for f in slurmd slurmctld; do
        if running "$DIR/$f.pid"; then
            kill "$(cat "$DIR/$f.pid")"
            for _ in $(seq 50); do running "$DIR/$f.pid" || break; sleep 0.1; done
        fi
    done
    say "stopped (config, state and logs stay in $DIR)"
}

env_line() { echo "export SLURM_CONF=$CONF"; }

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) export SLURM_CONF="$CONF"; sinfo; squeue ;;
    env) env_line ;;
    *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
