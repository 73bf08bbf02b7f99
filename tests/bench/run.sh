#!/usr/bin/env bash
# tests/bench/run.sh — side-by-side benchmark of discoveryd and etcd 3.4 (v2 API) on this machine:
# the same wrk workloads against both, alternating, medians and ratios written to BENCHMARKS.md.
# The token-dir GET also runs against two peers in the same alternation: h2o (Debian `h2o`) serving
# the bytes discoveryd answered as a static file (the limit of an HTTP server on this machine), and
# the upstream discovery server (Debian `etcd-discovery`, the original discovery.etcd.io code) on
# its own etcd 3.4, which it proxies to. --profile records perf (cpu-clock, -g) of every discoveryd
# run and writes the top symbols beside the report (tests/bench/out/profile-*.txt).
# The registration workload also counts each server's fdatasync/fsync syscalls (perf stat on the
# syscall tracepoints; needs root or perf_event_paranoid <= -1, else the column says so).
# Installs nothing (run deploy/deps.sh first). Usage: tests/bench/run.sh [--rounds N] [--duration S] [--quick]
#     [--profile] [--get-only]
# The durable-store benchmarks (snapshot under load, restart) are tests/bench/durable.py.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
helper=(python3 "$here/bench_helper.py")

rounds=3
duration=10
quick=0
tokens=10000
out="$root/BENCHMARKS.md"
build=1
wrk_threads=2
wrk_conns=64
quiet_wait=${BENCH_QUIET_WAIT:-90}
profile=0
workloads=(get put)
profile_dir="$root/tests/bench/out"
invocation="tests/bench/run.sh${*:+ $*}"

usage() {
    cat <<EOF
usage: tests/bench/run.sh [options]
  --rounds N      rounds of (etcd, discoveryd) per workload (default 3)
  --duration S    seconds per wrk run (default 10)
  --quick         smoke test: 1 round of 3 s (numbers labelled as a smoke run)
  --tokens N      tokens the registration workload spreads over (default 10000)
  --out FILE      report file (default BENCHMARKS.md at the repo root)
  --no-build      use build-bench/discoveryd as it is
  --profile       perf record -g (cpu-clock) of every discoveryd run; the top symbols go to
                  tests/bench/out/profile-<workload>-r<round>.txt (perf report --stdio)
  --get-only      only the token-dir GET workload (etcd, discoveryd, h2o, upstream)
Env: DISCOVERYD_BIN=path uses that binary instead of building build-bench (it is named in the report);
     DISCOVERYD_BENCH_ARGS adds flags to discoveryd; BENCH_NOTE adds a line to the report;
     BENCH_QUIET_WAIT=S: before each run wait up to S s (default 90) until no other test runner,
     server or browser runs and the CPUs idle; runs that started busy or saw one are flagged.
EOF
}

while (($#)); do
    case "$1" in
    --rounds) rounds=${2:?}; shift 2 ;;
    --duration) duration=${2:?}; shift 2 ;;
    --quick) quick=1; rounds=1; duration=3; shift ;;
    --tokens) tokens=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --no-build) build=0; shift ;;
    --profile) profile=1; shift ;;
    --get-only) workloads=(get); shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
done
[[ $rounds =~ ^[1-9][0-9]*$ && $rounds -le 50 ]] || { echo "--rounds: 1..50" >&2; exit 2; }
[[ $duration =~ ^[1-9][0-9]*$ && $duration -le 600 ]] || { echo "--duration: 1..600 s" >&2; exit 2; }
[[ $tokens =~ ^[1-9][0-9]*$ && $tokens -le 1000000 ]] || { echo "--tokens: 1..1000000" >&2; exit 2; }

for tool in etcd wrk python3 cmake curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run deploy/deps.sh first" >&2; exit 1; }
done
# the GET's peers: a target whose program is missing is reported as such, not skipped silently
have_h2o=1 have_upstream=1
command -v h2o >/dev/null || { have_h2o=0; echo "h2o missing (deploy/deps.sh installs it): no h2o column" >&2; }
command -v discovery.etcd.io >/dev/null ||
    { have_upstream=0; echo "discovery.etcd.io missing (deploy/deps.sh installs etcd-discovery): no upstream column" >&2; }
if ((profile)); then
    perf record -e cpu-clock -g -o /dev/null -- true >/dev/null 2>&1 ||
        { echo "--profile: perf record does not work here (linux-perf installed? root or perf_event_paranoid <= 1?)" >&2; exit 1; }
    mkdir -p "$profile_dir"
fi

tmp=$(mktemp -d /tmp/dd-bench.XXXXXX)
chmod 755 "$tmp" # h2o serves files from here
server_pid=""
aux_pid="" # a second process of the target (the upstream discovery server's etcd)

stop_pid() {
    local pid=$1
    [[ -n $pid ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do # at most 10 s
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
stop_server() {
    stop_pid "$server_pid"
    server_pid=""
    stop_pid "$aux_pid"
    aux_pid=""
}
cleanup() {
    stop_server
    if [[ -n ${wrk_pid:-} ]]; then
        kill "$wrk_pid" 2>/dev/null || true
        wait "$wrk_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# build discoveryd (Release); without a binary the discoveryd column says why

dd_bin="$root/build-bench/discoveryd"
dd_status="ok"
dd_origin="Release build (\`build-bench\`)"
if [[ -n ${DISCOVERYD_BIN:-} ]]; then
    build=0
    dd_bin=$DISCOVERYD_BIN
    dd_origin="binary given by DISCOVERYD_BIN=$DISCOVERYD_BIN (not built by this script)"
    [[ -x $dd_bin ]] || dd_status="not built"
fi
if ((build)); then
    log "building discoveryd (Release, build-bench)"
    if ! { cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=Release &&
        cmake --build "$root/build-bench" --target discoveryd -j2; } >"$tmp/build.log" 2>&1; then
        log "discoveryd build failed (last lines below); benchmarking etcd only"
        tail -n 15 "$tmp/build.log" >&2
        dd_status="not built"
    fi
fi
if [[ $dd_status == ok && ! -x $dd_bin ]]; then
    found=$(find "$root/build-bench" -name discoveryd -type f -perm -u+x 2>/dev/null | head -n 1 || true)
    if [[ -n $found ]]; then dd_bin=$found; else dd_status="not built"; fi
fi

nproc_=$(nproc)
dd_args=(--threads "$nproc_" --surplus 1000 --new-rate 1000000 --new-burst 1000000
    --new-range-rate 1000000 --new-range-burst 1000000
    --token-write-rate 1000000 --token-write-burst 1000000 --log-level warn)
# shellcheck disable=SC2206 # word splitting of the extra flags is intended
dd_args+=(${DISCOVERYD_BENCH_ARGS:-})

# ---------------------------------------------------------------------------------------------
# servers: start_<target> DIR sets server_pid and server_port

# the exact commands, for the report (PORT, DIR stand for the per-run values)
etcd_cmd="etcd --name bench --data-dir DIR/etcd.data --enable-v2=true --listen-client-urls http://127.0.0.1:PORT --advertise-client-urls http://127.0.0.1:PORT --listen-peer-urls http://127.0.0.1:PEER --initial-advertise-peer-urls http://127.0.0.1:PEER --initial-cluster bench=http://127.0.0.1:PEER --initial-cluster-state new"
h2o_threads=$(nproc)
h2o_cmd="h2o -c DIR/h2o.conf (listen 127.0.0.1:PORT, num-threads: $h2o_threads, file.dir: DIR/h2o-root, file.etag: OFF, file.mime.setdefaulttype: application/json; the file is the body discoveryd answered in the same round)"
upstream_cmd="discovery.etcd.io --addr 127.0.0.1:PORT --etcd http://127.0.0.1:ETCDPORT --host http://127.0.0.1:PORT, on its own etcd started as the etcd column's"

# launch_etcd DIR LOG: an etcd 3.4 member alone; sets etcd_launched_pid and etcd_launched_port
launch_etcd() {
    local dir=$1 log=$2 cport pport
    cport=$("${helper[@]}" freeport)
    pport=$("${helper[@]}" freeport)
    etcd --name bench --data-dir "$dir/etcd.data" --enable-v2=true \
        --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
        --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster "bench=http://127.0.0.1:$pport" --initial-cluster-state new \
        >"$log" 2>&1 &
    etcd_launched_pid=$!
    etcd_launched_port=$cport
}

start_etcd() {
    local dir=$1
    launch_etcd "$dir" "$dir/server.log"
    server_pid=$etcd_launched_pid
    server_port=$etcd_launched_port
    "${helper[@]}" wait "$server_port" /v2/keys/ 30 "$server_pid"
}

# h2o serving DIR/h2o-root, where run_one put the body discoveryd answered this round
start_h2o() {
    local dir=$1 port
    port=$("${helper[@]}" freeport)
    {
        echo "listen:"
        echo "  host: 127.0.0.1"
        echo "  port: $port"
        echo "num-threads: $h2o_threads"
        [[ $(id -u) -eq 0 ]] && echo "user: root"
        echo "file.etag: OFF"
        echo "file.mime.setdefaulttype: application/json"
        echo "hosts:"
        echo "  default:"
        echo "    paths:"
        echo "      /:"
        echo "        file.dir: $dir/h2o-root"
    } >"$dir/h2o.conf"
    h2o -c "$dir/h2o.conf" >"$dir/server.log" 2>&1 &
    server_pid=$!
    server_port=$port
    "${helper[@]}" wait "$server_port" "/v2/keys/discovery/$h2o_token" 30 "$server_pid"
}

# the upstream discovery server on its own etcd (aux_pid), both stopped by stop_server
start_upstream() {
    local dir=$1 port
    launch_etcd "$dir" "$dir/etcd.log"
    aux_pid=$etcd_launched_pid
    "${helper[@]}" wait "$etcd_launched_port" /v2/keys/ 30 "$aux_pid" || return 1
    port=$("${helper[@]}" freeport)
    discovery.etcd.io --addr "127.0.0.1:$port" --etcd "http://127.0.0.1:$etcd_launched_port" \
        --host "http://127.0.0.1:$port" >"$dir/server.log" 2>&1 &
    server_pid=$!
    server_port=$port
    "${helper[@]}" wait "$server_port" /robots.txt 30 "$server_pid"
}

start_discoveryd() {
    local dir=$1 port
    port=$("${helper[@]}" freeport)
    "$dd_bin" --listen "127.0.0.1:$port" --data-dir "$dir/dd.data" --public-url "http://127.0.0.1:$port" \
        "${dd_args[@]}" >"$dir/server.log" 2>&1 &
    server_pid=$!
    server_port=$port
    "${helper[@]}" wait "$server_port" /health 30 "$server_pid"
}

# Other people's test runs (test runners, servers, browsers) that are not this script's children.
foreign_running() {
    local p n # one name per pgrep -x (pgrep warns about patterns longer than a comm)
    for n in ctest chromium chrome postgres; do
        pgrep -x "$n" >/dev/null && return 0
    done
    for n in etcd discoveryd wrk; do
        for p in $(pgrep -x "$n"); do
            # ours: the server, wrk, and the server's children (discoveryd's snapshot writers)
            [[ $p == "$server_pid" || $p == "${wrk_pid:-}" || $p == "${aux_pid:-}" ]] && continue
            [[ $(awk '{print $4}' "/proc/$p/stat" 2>/dev/null) == "$server_pid" ]] && continue
            return 0
        done
    done
    return 1
}

# cpu ticks (utime+stime) of the pids given (a target of two processes is summed)
cpu_ticks() {
    local p s=0 v
    for p in "$@"; do
        [[ -n $p ]] || continue
        v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
        s=$((s + ${v:-0}))
    done
    echo "$s"
}
# a /proc/PID/status field in kB, summed over the pids given (empty when none could be read)
status_kb() {
    local key=$1 p v s="" 
    shift
    for p in "$@"; do
        [[ -n $p ]] || continue
        v=$(awk -v k="$key:" '$1 == k {print $2}' "/proc/$p/status" 2>/dev/null || true)
        [[ -n $v ]] && s=$((${s:-0} + v))
    done
    echo "$s"
}

results="$tmp/results.tsv"
printf 'round\twl\ttarget\tstatus\trps\tp50\tp99\tnon2xx\tsockerr\trequests\thwm_kb\tcpu\tdata_kb\tfsyncs\tfsync_metric\twal_segs\tsecs\tstart\tcontended\n' >"$results"

# fsync counting for the registration workload (see run_one); without perf the column says so
fsync_events='syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync'
have_perf=0
if command -v perf >/dev/null && perf stat -x, -e "$fsync_events" -o /dev/null true 2>/dev/null; then
    have_perf=1
else
    log "perf cannot count syscall tracepoints here (not root, or no tracefs): no fsync counts"
fi
# etcd's own count of the fsyncs it issued: WAL fsyncs + bbolt commits + snapshot file fsyncs
etcd_fsyncs() {
    curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk '
        /^etcd_disk_wal_fsync_duration_seconds_count / || /^etcd_disk_backend_commit_duration_seconds_count / ||
        /^etcd_snap_fsync_duration_seconds_count / || /^etcd_snap_db_fsync_duration_seconds_count / {s += $2; n++}
        END {if (n) printf "%d", s}'
}
clk=$(getconf CLK_TCK)

# run_one ROUND WORKLOAD TARGET: one fresh server, seed, wrk, measure, stop
run_one() {
    local round=$1 wl=$2 target=$3
    local dir="$tmp/r$round-$wl-$target"
    mkdir -p "$dir"
    local skip=""
    [[ $target == discoveryd && $dd_status != ok ]] && skip=$dd_status
    [[ $target == h2o ]] && ((!have_h2o)) && skip="h2o not installed"
    [[ $target == upstream ]] && ((!have_upstream)) && skip="etcd-discovery not installed"
    if [[ $target == h2o && -z $skip ]]; then
        # the same bytes discoveryd answered this round (etcd's when discoveryd did not run)
        local src=""
        for f in "$tmp/body-$round-discoveryd.json" "$tmp/body-$round-etcd.json"; do
            [[ -s $f ]] && { src=$f; break; }
        done
        if [[ -z $src ]]; then
            skip="no body to serve (neither discoveryd nor etcd answered this round)"
        else
            h2o_token="bench-get-$round"
            mkdir -p "$dir/h2o-root/v2/keys/discovery"
            cp "$src" "$dir/h2o-root/v2/keys/discovery/$h2o_token"
            chmod -R a+rX "$dir"
        fi
    fi
    if [[ -n $skip ]]; then
        printf '%s\t%s\t%s\t%s\t\t\t\t0\t0\t0\t\t\n' "$round" "$wl" "$target" "$skip" >>"$results"
        return 0
    fi
    # the machine is shared: wait (bounded) for other people's test runs to end, note what was seen
    local quiet
    quiet=$("${helper[@]}" wait-quiet $$ "$quiet_wait")
    log "round $round, workload $wl, $target: starting (${quiet//$'\t'/ })"
    if ! "start_$target" "$dir"; then
        log "$target failed to start; log tail:"
        tail -n 20 "$dir/server.log" >&2 || true
        stop_server
        printf '%s\t%s\t%s\tfailed to start\t\t\t\t0\t0\t0\t\t\n' "$round" "$wl" "$target" >>"$results"
        return 0
    fi
    local url args=()
    if [[ $wl == get ]]; then
        local tok="bench-get-$round" q="quorum=false&recursive=false&sorted=false" seeded=1
        case $target in
        etcd | discoveryd)
            "${helper[@]}" seed-members "$server_port" "$tok" || seeded=0
            url="http://127.0.0.1:$server_port/v2/keys/discovery/$tok?$q"
            # the body h2o serves in this round
            curl -sf "$url" -o "$tmp/body-$round-$target.json" || seeded=0
            ;;
        h2o) url="http://127.0.0.1:$server_port/v2/keys/discovery/$tok?$q" ;;
        upstream)
            # a token from its /new, three members registered through it, as a cluster would
            tok=$("${helper[@]}" seed-upstream "$server_port") || seeded=0
            url="http://127.0.0.1:$server_port/$tok?$q"
            ;;
        esac
        if ((!seeded)); then
            stop_server
            printf '%s\t%s\t%s\tseed failed\t\t\t\t0\t0\t0\t\t\n' "$round" "$wl" "$target" >>"$results"
            return 0
        fi
        args=(-s "$here/get.lua")
    else
        log "seeding $tokens tokens"
        "${helper[@]}" seed-tokens "$server_port" "bench" "$tokens" 3 || { stop_server; printf '%s\t%s\t%s\tseed failed\t\t\t\t0\t0\t0\t\t\n' "$round" "$wl" "$target" >>"$results"; return 0; }
        url="http://127.0.0.1:$server_port"
        args=(-s "$here/put.lua")
    fi
    # fsyncs during the run: kernel tracepoints counted by perf for the server's threads (and the
    # threads/children they start: perf stat inherits), so strace's slowdown is avoided; etcd's own
    # counters (WAL fsyncs + backend commits + snapshot fsyncs) are read beside them as a check.
    local perf_pid="" m0=""
    if [[ $wl == put ]]; then
        if ((have_perf)); then
            perf stat -x, -e "$fsync_events" -p "$server_pid" -o "$dir/perf.txt" 2>/dev/null &
            perf_pid=$!
            sleep 0.3 # perf attaches before the load starts
        fi
        [[ $target == etcd ]] && m0=$(etcd_fsyncs "$server_port")
    fi
    # --profile: where discoveryd's time goes during the load (sampled, all threads)
    local prof_pid=""
    if ((profile)) && [[ $target == discoveryd ]]; then
        perf record -e cpu-clock -g -p "$server_pid" -o "$dir/perf.data" >/dev/null 2>&1 &
        prof_pid=$!
        sleep 0.3 # perf attaches before the load starts
    fi
    local t0 t1 c0 c1
    c0=$(cpu_ticks "$server_pid" "$aux_pid")
    t0=$(date +%s.%N)
    BENCH_TOKENS=$tokens BENCH_TOKEN_PREFIX=bench \
        wrk -t"$wrk_threads" -c"$wrk_conns" -d"${duration}s" --latency "${args[@]}" "$url" >"$dir/wrk.txt" 2>&1 &
    wrk_pid=$!
    local peak=0 rss i=0 contended=0
    for _ in $(seq 1 $(((duration + 30) * 5))); do # bounded: wrk ends after duration (+ its 2 s timeout)
        kill -0 "$wrk_pid" 2>/dev/null || break
        rss=$(status_kb VmRSS "$server_pid" "$aux_pid")
        [[ -n $rss && $rss -gt $peak ]] && peak=$rss
        if ((i++ % 5 == 0)) && foreign_running; then contended=$((contended + 1)); fi
        sleep 0.2
    done
    if kill -0 "$wrk_pid" 2>/dev/null; then kill "$wrk_pid" 2>/dev/null || true; fi
    wait "$wrk_pid" 2>/dev/null || true
    wrk_pid=""
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "$server_pid" "$aux_pid")
    if [[ -n $prof_pid ]]; then
        kill -INT "$prof_pid" 2>/dev/null || true
        wait "$prof_pid" 2>/dev/null || true
        local pf="$profile_dir/profile-$wl-r$round.txt"
        {
            echo "# perf record -e cpu-clock -g -p <discoveryd> during: wrk -t$wrk_threads -c$wrk_conns -d${duration}s ($wl, round $round)"
            echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), discoveryd ${dd_bin#"$root"/}; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
            echo "# top symbols by self time: perf report --stdio --no-children -g none --sort dso,symbol"
            perf report -i "$dir/perf.data" --stdio --no-children -g none --sort dso,symbol 2>/dev/null |
                awk '!/^#/ && NF && n++ < 30 {sub(/[ \t-]+$/, ""); print}' || true
            echo
            echo "# top symbols including their callees: perf report --stdio --children -g none --sort symbol"
            perf report -i "$dir/perf.data" --stdio --children -g none --sort symbol 2>/dev/null |
                awk '!/^#/ && NF && n++ < 30 {sub(/[ \t-]+$/, ""); print}' || true
        } >"$pf"
        log "  profile: ${pf#"$root"/}"
    fi
    local fsyncs="" fsync_metric="" wal_segs=""
    if [[ -n $perf_pid ]]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
        fsyncs=$(awk -F, '$3 ~ /syscalls:sys_enter_f(data)?sync/ && $1 ~ /^[0-9]+$/ {s += $1} END {print s + 0}' "$dir/perf.txt" 2>/dev/null || true)
    fi
    if [[ -n $m0 ]]; then
        local m1
        m1=$(etcd_fsyncs "$server_port")
        [[ -n $m1 ]] && fsync_metric=$((m1 - m0))
    fi
    if [[ $wl == put && $target == discoveryd ]]; then
        wal_segs=$(find "$dir/dd.data/wal" -maxdepth 1 -name '*.wal' -size +0 2>/dev/null | wc -l)
    fi
    local hwm
    hwm=$(status_kb VmHWM "$server_pid" "$aux_pid")
    [[ -n $hwm ]] || hwm=$peak
    local status=ok
    kill -0 "$server_pid" 2>/dev/null || status="server died"
    local data_kb
    data_kb=$({ du -sk "$dir"/*.data 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}') # h2o has none
    local parsed
    parsed=$("${helper[@]}" parse-wrk "$dir/wrk.txt") || status="wrk output unparsable"
    local cpu
    cpu=$(awk -v a="$c0" -v b="$c1" -v t0="$t0" -v t1="$t1" -v hz="$clk" 'BEGIN{printf "%.3f", (b-a)/hz/(t1-t0)}')
    IFS=$'\t' read -r rps p50 p99 non2xx sockerr total <<<"$parsed"
    local secs
    secs=$(awk -v t0="$t0" -v t1="$t1" 'BEGIN{printf "%.3f", t1-t0}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$wl" "$target" "$status" \
        "$rps" "$p50" "$p99" "$non2xx" "$sockerr" "$total" "$hwm" "$cpu" "$data_kb" \
        "$fsyncs" "$fsync_metric" "$wal_segs" "$secs" "${quiet%%$'\t'*}" "$contended" >>"$results"
    log "  $target: $rps req/s, p50 $p50 ms, p99 $p99 ms, non-2xx $non2xx, socket errors $sockerr, VmHWM $hwm kB, cpu $cpu cores, data dir $data_kb kB${fsyncs:+, fsyncs $fsyncs in $secs s}${fsync_metric:+ (etcd metrics: $fsync_metric)}${wal_segs:+, WAL segments $wal_segs}, $status"
    if [[ $status != ok || $non2xx != 0 || $sockerr != 0 ]]; then
        log "  wrk output:"
        sed 's/^/    /' "$dir/wrk.txt" >&2
    fi
    stop_server
}

for wl in "${workloads[@]}"; do
    for round in $(seq 1 "$rounds"); do
        run_one "$round" "$wl" etcd
        run_one "$round" "$wl" discoveryd
        if [[ $wl == get ]]; then
            run_one "$round" "$wl" h2o
            run_one "$round" "$wl" upstream
        fi
    done
done

# ---------------------------------------------------------------------------------------------
# report

dd_version="not built"
if [[ $dd_status == ok ]]; then
    dd_version="commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if [[ -n $(git -C "$root" --no-optional-locks status --porcelain --untracked-files=no -- . ':!BENCHMARKS.md' 2>/dev/null) ]]; then
        dd_version+=" + uncommitted changes"
    fi
fi
{
    echo "command=$invocation"
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "nproc=$nproc_"
    echo "cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "kernel=$(uname -r)"
    echo "etcd_version=etcd $(etcd --version | awk '/^etcd Version/ {print $3}')"
    echo "h2o_version=$( ((have_h2o)) && h2o --version 2>/dev/null | sed -n 1p || echo "not installed")"
    echo "upstream_version=$(dpkg-query -W -f='etcd-discovery ${Version}' etcd-discovery 2>/dev/null || echo "not installed")"
    echo "etcd_cmd=$etcd_cmd"
    echo "h2o_cmd=$h2o_cmd"
    echo "upstream_cmd=$upstream_cmd"
    echo "profile=$( ((profile)) && echo "${profile_dir#"$root"/}/profile-*.txt" || true)"
    echo "workloads=${workloads[*]}"
    echo "dd_version=$dd_version, $dd_origin"
    echo "dd_args=discoveryd --listen 127.0.0.1:PORT --data-dir DIR --public-url URL ${dd_args[*]}"
    echo "wrk_cmd=wrk -t$wrk_threads -c$wrk_conns -d${duration}s --latency"
    echo "rounds=$rounds"
    echo "duration=$duration"
    echo "tokens=$tokens"
    echo "quick=$quick"
    echo "note=${BENCH_NOTE:-}"
} >"$tmp/meta.txt"
"${helper[@]}" report "$results" "$tmp/meta.txt" "$out"
log "wrote $out"
column -t -s $'\t' "$results" >&2 || cat "$results" >&2
