#!/usr/bin/env bash
# Receive benchmark: segnode versus DCMTK storescp, both fed by DCMTK storescu over 127.0.0.1.
#
# Scenarios (see bench/README.md):
#   single    one storescu sends one 200 x 512^2 CT series (one association)
#   parallel  8 storescu at once, each with its own 25-slice series (same 200 instances total)
#   nagle     as "single", but storescu runs WITHOUT TCP_NODELAY (receivers unchanged)
#
# Every timed run gets a freshly generated series (new UIDs, same pixel data) and a freshly
# started receiver with an empty directory, so segnode never sees a duplicate instance.
# segnode and storescp runs are interleaved (ABBA order) so machine noise hits both alike.
# Only storescu's wall-clock time (start to exit of the last sender) is measured; phantom
# generation, receiver start-up, `sync`, verification and clean-up happen outside the timer.
set -euo pipefail
export LC_ALL=C

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build_dir=${SEGNODE_BUILD_DIR:-$script_dir/../build}

rounds=${BENCH_ROUNDS:-3}
senders=8
slices=200
rows=512
cols=512
scenarios=single,parallel,nagle
port=${BENCH_PORT:-}
base_dir=${BENCH_DIR:-${TMPDIR:-/tmp}}
segnode_bin=$build_dir/segnode
phantom_bin=$build_dir/tests/phantom/segnode-phantom
segnode_fsync=true
storescp_fork=0
keep=0
csv=""
segnode_env=()

usage() {
    cat <<EOF
Usage: $0 [options]
  --rounds N          timed rounds per receiver and scenario (default 3; env BENCH_ROUNDS)
  --scenarios LIST    comma-separated subset of: single,parallel,nagle (default: all)
  --senders N         parallel storescu processes in "parallel" (default 8; must divide --slices)
  --slices N          instances per round (default 200)
  --rows N --cols N   image size (default 512 x 512)
  --dir DIR           where the temporary bench directory is made (default \$TMPDIR or /tmp;
                      env BENCH_DIR). Both receivers write below it, on the same filesystem.
  --port N            first of two TCP ports used on 127.0.0.1 (default: the first free pair
                      from 21190 upwards; env BENCH_PORT)
  --segnode PATH      segnode binary (default $build_dir/segnode)
  --phantom PATH      segnode-phantom binary (default $build_dir/tests/phantom/segnode-phantom)
  --segnode-fsync on|off
                      storage.fsync for segnode (default on; "off" only to investigate)
  --segnode-env NAME=VALUE
                      extra environment for segnode (repeatable; for experiments, e.g. LD_PRELOAD)
  --storescp-fork     also run "storescp --fork" in the parallel scenario (reference column)
  --csv FILE          append one line per timed run to FILE
  --keep              keep the bench directory (received files, logs) afterwards
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --scenarios) scenarios=$2; shift 2 ;;
    --senders) senders=$2; shift 2 ;;
    --slices) slices=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --cols) cols=$2; shift 2 ;;
    --dir) base_dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --segnode) segnode_bin=$2; shift 2 ;;
    --phantom) phantom_bin=$2; shift 2 ;;
    --segnode-fsync)
        case $2 in on | true) segnode_fsync=true ;; off | false) segnode_fsync=false ;;
        *) echo "--segnode-fsync takes on or off" >&2; exit 2 ;; esac
        shift 2 ;;
    --segnode-env) segnode_env+=("$2"); shift 2 ;;
    --storescp-fork) storescp_fork=1; shift ;;
    --csv) csv=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
done

die() { echo "receive_bench: $*" >&2; exit 1; }

[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
[[ $senders =~ ^[1-9][0-9]*$ ]] || die "--senders must be a positive integer"
((slices % senders == 0)) || die "--slices ($slices) must be a multiple of --senders ($senders)"
((rounds >= 3)) || echo "receive_bench: warning: fewer than 3 rounds; medians are not robust" >&2
for tool in storescu storescp echoscu; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install dcmtk)"
done
[[ -x $segnode_bin ]] || die "segnode binary not found at $segnode_bin (build it, or --segnode)"
[[ -x $phantom_bin ]] || die "segnode-phantom not found at $phantom_bin (build it, or --phantom)"
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [[ -z $port ]]; then
    for ((port = 21190; port < 21290; port += 2)); do
        port_free "$port" && port_free $((port + 1)) && break
    done
fi
segnode_port=$port
storescp_port=$((port + 1))

bench=$(mktemp -d "$base_dir/segnode-bench.XXXXXX")
receiver_pid=""
cleanup() {
    if [[ -n $receiver_pid ]]; then
        kill -TERM "$receiver_pid" 2>/dev/null || true
        wait "$receiver_pid" 2>/dev/null || true
    fi
    if ((keep)); then
        echo "bench directory kept: $bench" >&2
    else
        rm -rf "$bench"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free "$segnode_port" || die "port $segnode_port on 127.0.0.1 is in use (use --port)"
port_free "$storescp_port" || die "port $storescp_port on 127.0.0.1 is in use (use --port)"

# segnode: built-in defaults (storage.fsync = true, WAL + synchronous=FULL index) except that
# it listens on 127.0.0.1 only.
segnode_config=$bench/segnode.toml
cat >"$segnode_config" <<EOF
[dicom]
bind_address = "127.0.0.1"

[storage]
fsync = $segnode_fsync

# The receive path only: no HTTP API (its default port may be taken on a shared machine).
[http]
enabled = false
EOF

if command -v sqlite3 >/dev/null; then
    db_count() { sqlite3 -readonly "$1" "SELECT count(*) FROM $2"; }
else
    db_count() {
        /usr/bin/python3 -c 'import sqlite3,sys
c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
print(c.execute("SELECT count(*) FROM " + sys.argv[2]).fetchone()[0])' "$1" "$2"
    }
fi

fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 }
    END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# --- inputs ----------------------------------------------------------------------------------

# make_input DIR NSERIES SLICES_EACH: fresh UIDs every call, identical pixel data (seed 1).
make_input() {
    local dir=$1 n=$2 each=$3 i
    for ((i = 0; i < n; i++)); do
        "$phantom_bin" --out "$dir/s$i" --rows "$rows" --cols "$cols" --slices "$each" \
            --seed 1 --patient-id "BENCH$i" >/dev/null || die "segnode-phantom failed"
    done
}

# --- receivers -------------------------------------------------------------------------------

wait_ready() { # wait_ready PORT AE LOG
    local i
    for ((i = 0; i < 200; i++)); do
        if ! kill -0 "$receiver_pid" 2>/dev/null; then
            cat "$3" >&2
            die "receiver on port $1 exited during start-up"
        fi
        if echoscu -to 2 -aec "$2" 127.0.0.1 "$1" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.05
    done
    die "receiver on port $1 did not answer C-ECHO within 10 s"
}

start_receiver() { # start_receiver KIND OUT LOG
    local kind=$1 out=$2 log=$3
    case $kind in
    segnode)
        env "${segnode_env[@]}" "$segnode_bin" --config "$segnode_config" serve --workdir "$out" --port "$segnode_port" \
            --log-level warn >"$log" 2>&1 &
        receiver_pid=$!
        wait_ready "$segnode_port" SEGNODE "$log"
        ;;
    storescp | storescp-fork)
        mkdir -p "$out"
        local fork=()
        [[ $kind == storescp-fork ]] && fork=(--fork)
        TCP_NODELAY=1 storescp "${fork[@]}" -od "$out" "$storescp_port" >"$log" 2>&1 &
        receiver_pid=$!
        wait_ready "$storescp_port" SEGNODE "$log"
        ;;
    esac
}

stop_receiver() {
    kill -TERM "$receiver_pid" 2>/dev/null || true
    wait "$receiver_pid" 2>/dev/null || true
    receiver_pid=""
    # storescp --fork leaves its children to finish on their own; they exit with their
    # association, which has ended by now.
}

# verify KIND OUT NSERIES: the receiver really stored every instance.
verify() {
    local kind=$1 out=$2 nseries=$3 files
    case $kind in
    segnode)
        files=$(find "$out/instances" -type f -name '*.dcm' | wc -l)
        [[ $files -eq $slices ]] || die "segnode stored $files files, expected $slices ($out)"
        local n
        n=$(db_count "$out/segnode.db" instances)
        [[ $n -eq $slices ]] || die "segnode indexed $n instances, expected $slices ($out)"
        n=$(db_count "$out/segnode.db" series)
        [[ $n -eq $nseries ]] || die "segnode indexed $n series, expected $nseries ($out)"
        ;;
    storescp*)
        files=$(find "$out" -type f | wc -l)
        [[ $files -eq $slices ]] || die "storescp stored $files files, expected $slices ($out)"
        ;;
    esac
}

# --- one timed run ---------------------------------------------------------------------------

last_time=""
last_bytes=0
run_index=0

# timed_run SCENARIO KIND ROUND
timed_run() {
    local scenario=$1 kind=$2 round=$3
    run_index=$((run_index + 1))
    local dir=$bench/run$run_index-$scenario-$kind
    local nseries=1 each=$slices nodelay=1
    [[ $scenario == parallel ]] && nseries=$senders && each=$((slices / senders))
    [[ $scenario == nagle ]] && nodelay=0
    mkdir -p "$dir"
    make_input "$dir/in" "$nseries" "$each"
    last_bytes=$(find "$dir/in" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')

    start_receiver "$kind" "$dir/out" "$dir/receiver.log"
    local port=$storescp_port
    [[ $kind == segnode ]] && port=$segnode_port
    sync # nothing dirty (inputs, the previous run's files) may be flushed inside the timer
    sleep 0.2

    local pids=() i t0 t1
    local env_nodelay=(env -u TCP_NODELAY)
    ((nodelay)) && env_nodelay=(env TCP_NODELAY=1)
    t0=$EPOCHREALTIME
    for ((i = 0; i < nseries; i++)); do
        "${env_nodelay[@]}" storescu -aec SEGNODE 127.0.0.1 "$port" +sd "$dir/in/s$i" \
            >"$dir/storescu$i.log" 2>&1 &
        pids+=($!)
    done
    local failed=0
    for i in "${pids[@]}"; do
        wait "$i" || failed=1
    done
    t1=$EPOCHREALTIME
    last_time=$(fsub "$t1" "$t0")

    stop_receiver
    ((failed == 0)) || { cat "$dir"/storescu*.log >&2; die "storescu failed ($scenario, $kind)"; }
    if grep -l '^E:' "$dir"/storescu*.log >/dev/null 2>&1; then
        cat "$dir"/storescu*.log >&2
        die "storescu reported errors ($scenario, $kind)"
    fi
    verify "$kind" "$dir/out" "$nseries"
    if [[ -n $csv ]]; then
        echo "$scenario,$kind,$round,$last_time,$last_bytes,$slices,$segnode_fsync" >>"$csv"
    fi
    ((keep)) || rm -rf "$dir"
    sync
}

# --- scenarios -------------------------------------------------------------------------------

declare -A ratio_of

run_scenario() {
    local scenario=$1 title kinds=(segnode storescp)
    case $scenario in
    single) title="single: 1 storescu (TCP_NODELAY=1) x $slices instances, one association" ;;
    parallel)
        title="parallel: $senders storescu at once (TCP_NODELAY=1), $senders series x $((slices / senders)) instances"
        ((storescp_fork)) && kinds+=(storescp-fork)
        ;;
    nagle) title="nagle: 1 storescu WITHOUT TCP_NODELAY x $slices instances (receivers unchanged)" ;;
    *) die "unknown scenario '$scenario'" ;;
    esac
    declare -A times
    local r k order bytes=0
    for ((r = 1; r <= rounds; r++)); do
        # ABBA: odd rounds segnode first, even rounds storescp first.
        if ((r % 2)); then order=("${kinds[@]}"); else order=(); for k in "${kinds[@]}"; do order=("$k" "${order[@]}"); done; fi
        for k in "${order[@]}"; do
            timed_run "$scenario" "$k" "$r"
            times[$k]="${times[$k]:-} $last_time"
            bytes=$last_bytes
            printf '  .. %-9s round %d/%d %-14s %7.3f s\n' "$scenario" "$r" "$rounds" "$k" "$last_time" >&2
        done
    done

    local mb
    mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }')
    echo
    echo "== $title"
    echo "   $slices instances, $mb MB per round (MB = 10^6 bytes of DICOM files sent)"
    printf '   %-8s' round
    for k in "${kinds[@]}"; do printf ' %14s' "$k [s]"; done
    echo
    local -a cols
    for ((r = 1; r <= rounds; r++)); do
        printf '   %-8s' "$r"
        for k in "${kinds[@]}"; do
            read -r -a cols <<<"${times[$k]}"
            printf ' %14s' "${cols[r - 1]}"
        done
        echo
    done
    declare -A med
    printf '   %-8s' median
    for k in "${kinds[@]}"; do
        med[$k]=$(echo "${times[$k]}" | median)
        printf ' %14s' "${med[$k]}"
    done
    echo
    printf '   %-8s' MB/s
    for k in "${kinds[@]}"; do printf ' %14s' "$(awk -v b="$bytes" -v t="${med[$k]}" 'BEGIN { printf "%.1f", b / 1e6 / t }')"; done
    echo
    printf '   %-8s' inst/s
    for k in "${kinds[@]}"; do printf ' %14s' "$(awk -v n="$slices" -v t="${med[$k]}" 'BEGIN { printf "%.0f", n / t }')"; done
    echo
    [[ $scenario == single ]] && single_storescp_median=${med[storescp]}
    # Throughput ratio = storescp median time / segnode median time.
    ratio_of[$scenario]=$(awk -v s="${med[segnode]}" -v d="${med[storescp]}" 'BEGIN { printf "%.2f", d / s }')
    if [[ -n ${med[storescp-fork]:-} ]]; then
        ratio_of[parallel-fork]=$(awk -v s="${med[segnode]}" -v d="${med[storescp-fork]}" 'BEGIN { printf "%.2f", d / s }')
    fi
}

echo "segnode receive benchmark  $(date -u +%Y-%m-%dT%H:%M:%SZ)  host $(hostname)  $(nproc) cores"
echo "segnode:  $segnode_bin ($("$segnode_bin" --version 2>/dev/null | head -1), built $(date -u -r "$segnode_bin" +%Y-%m-%dT%H:%M:%SZ)), storage.fsync = $segnode_fsync, log warn"
((${#segnode_env[@]})) && echo "          segnode environment: ${segnode_env[*]}"
echo "storescp: $(command -v storescp) ($(storescp --version 2>&1 | grep -o 'v[0-9.]*' | head -1)), TCP_NODELAY=1, -od (writes files, no fsync)"
echo "sender:   storescu -aec SEGNODE 127.0.0.1 PORT +sd DIR   (TCP_NODELAY=1 except in 'nagle')"
echo "rounds:   $rounds per receiver and scenario, interleaved ABBA; fresh series + fresh receiver each run"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at start"
if awk -v l="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN { exit !(l > 0.5) }'; then
    echo "          warning: the machine is busy; expect noisy figures (rerun when idle)"
fi
echo "bench dir (both receivers write here):"
df -hT "$bench" | sed 's/^/  /'

# --- durability floor ------------------------------------------------------------------------
# What this filesystem charges for making data durable, measured here in the same run: the
# cheapest possible durable write (4 KiB overwritten in a preallocated file + fdatasync: no
# allocation, no metadata). storescp never fsyncs, so with one durable write per C-STORE no
# receiver can beat storescp_time + instances x floor on one association.
floor_probe() {
    /usr/bin/python3 - "$bench/floor" "$1" <<'PY'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
block = b"\1" * 4096
fd = os.open(os.path.join(d, "pre"), os.O_RDWR | os.O_CREAT, 0o644)
for i in range(64):
    os.pwrite(fd, block, i * 4096)
os.fsync(fd)
t = time.perf_counter()
for i in range(n):
    os.pwrite(fd, block, (i % 64) * 4096)
    os.fdatasync(fd)
print(f"{(time.perf_counter() - t) / n * 1000:.3f}")
os.close(fd)
PY
    rm -rf "$bench/floor"
}

IFS=, read -r -a scenario_list <<<"$scenarios"
for s in "${scenario_list[@]}"; do
    run_scenario "$s"
done

sync
floor_min_ms=$(floor_probe "$slices")
echo
echo "== durability floor on this filesystem ($slices writes, same run)"
echo "   one minimal durable write (4 KiB overwrite + fdatasync): $floor_min_ms ms"
if [[ -n ${ratio_of[single]:-} ]]; then
    best=$(awk -v d="${single_storescp_median}" -v n="$slices" -v f="$floor_min_ms" \
        'BEGIN { printf "%.2f", d / (d + n * f / 1000) }')
    echo "   single association: storescp median $single_storescp_median s + $slices x $floor_min_ms ms"
    echo "   => with one durable write per C-STORE no receiver exceeds ratio $best here"
fi
echo
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at end"
for s in "${scenario_list[@]}"; do
    case $s in
    single) label="single" ;;
    parallel) label="$senders parallel" ;;
    nagle) label="single, sender without TCP_NODELAY" ;;
    esac
    echo "ratio segnode/storescp ($label): ${ratio_of[$s]}"
    if [[ $s == parallel && -n ${ratio_of[parallel-fork]:-} ]]; then
        echo "ratio segnode/storescp --fork ($label, reference only): ${ratio_of[parallel-fork]}"
    fi
done
# The target (>= 0.90 x storescp while fsyncing and indexing every instance) is judged on the
# parallel scenario. On one association it is bounded by the disk: every C-STORE waits for a
# durable write storescp never makes, so the single ratio is reported against that bound.
if [[ -n ${ratio_of[parallel]:-} ]]; then
    if awk -v r="${ratio_of[parallel]}" 'BEGIN { exit !(r >= 0.90) }'; then
        echo "target >= 0.90 ($senders parallel senders): met"
    else
        echo "target >= 0.90 ($senders parallel senders): NOT met"
    fi
fi
if [[ -n ${ratio_of[single]:-} ]]; then
    echo "single association: ${ratio_of[single]}; bound by one minimal durable write per C-STORE: $best" \
        "(segnode reaches $(awk -v r="${ratio_of[single]}" -v b="$best" 'BEGIN { printf "%.0f", 100 * r / b }')% of it)"
fi
