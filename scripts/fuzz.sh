#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz in build-fuzz (clang, -DSEGNODE_FUZZ=ON: every
# library with ASan + UBSan + coverage), makes the seed corpora and runs each target for a
# bounded time, then prints the executions per target. docs/testing.md explains the layout.
#
#   scripts/fuzz.sh [TARGET...]         all targets by default
#   FUZZ_TIME=600 scripts/fuzz.sh       seconds per target (default 60)
#   FUZZ_JOBS=2                         parallel fuzzing processes per target (-fork; default 1)
#   FUZZ_BUILD_DIR=build-fuzz           the build directory
#   SEGNODE_TEST_DATA=/path/to/data     small real DICOM files become loader seeds (optional)
#
# Exit status 1 when a target crashed (the input is in $FUZZ_BUILD_DIR/fuzz/artifacts/TARGET/).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${FUZZ_BUILD_DIR:-build-fuzz}
seconds=${FUZZ_TIME:-60}
jobs=${FUZZ_JOBS:-1}
all_targets=(fuzz_config fuzz_dicom_loader fuzz_dicom_series fuzz_contours fuzz_derived_writers)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

if [ ! -f "$build/CMakeCache.txt" ]; then
  launcher=()
  command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DSEGNODE_FUZZ=ON \
    -DSEGNODE_BUILD_BENCH=OFF "${launcher[@]}"
fi
ninja -C "$build" -j"${BUILD_JOBS:-2}" "${targets[@]}" segnode-phantom

work=$build/fuzz
mkdir -p "$work"

# ---- seed corpora (regenerated every run; never committed) ----
make_seeds() {
  local target=$1 dir=$work/seeds/$1
  rm -rf "$dir"
  mkdir -p "$dir"
  case $target in
    fuzz_config)
      cp config/*.toml "$dir"/
      # The sample with its commented-out tables and keys switched on (peers, rules, TLS,
      # external algorithms): reaches the checks a file of defaults never does.
      sed -E 's/^# ?(\[|[a-z_]+ = )/\1/; s/^algorithms_dir = .*//' config/segnode.toml \
        >"$dir/segnode-uncommented.toml"
      ;;
    fuzz_dicom_loader)
      local phantom=$build/tests/phantom/segnode-phantom tmp
      tmp=$(mktemp -d)
      local n=0
      for orientation in axial oblique; do
        for ts in explicit implicit; do
          "$phantom" --out "$tmp/$orientation-$ts" --rows 12 --cols 10 --slices 1 \
            --orientation "$orientation" --transfer-syntax "$ts" >/dev/null
          for f in "$tmp/$orientation-$ts"/*; do
            n=$((n + 1))
            cp "$f" "$dir/phantom-$orientation-$ts-$n.dcm"
          done
        done
      done
      rm -rf "$tmp"
      local data=${SEGNODE_TEST_DATA:-$root/../shared/data}
      if [ -d "$data" ]; then
        # Small real files: compressed syntaxes, enhanced multi-frame, SEG/RTSTRUCT (refused).
        find "$data" -type f -size -40k ! -name '*.md' -print0 |
          while IFS= read -r -d '' f; do
            cp "$f" "$dir/real-$(printf '%s' "$f" | md5sum | cut -c1-12)"
          done
      else
        echo "fuzz.sh: no real corpus at $data; the loader starts from phantoms only" >&2
      fi
      ;;
    fuzz_dicom_series)
      # Pairs of neighbouring phantom slices, each as <4-byte LE length of the first><first><second>.
      local phantom=$build/tests/phantom/segnode-phantom tmp
      tmp=$(mktemp -d)
      for orientation in axial sagittal oblique; do
        "$phantom" --out "$tmp/$orientation" --rows 8 --cols 6 --slices 3 \
          --orientation "$orientation" >/dev/null
        local files=("$tmp/$orientation"/*)
        for pair in "0 1" "2 0"; do
          local i j a b
          read -r i j <<<"$pair"
          a=${files[$i]} b=${files[$j]}
          python3 -c 'import struct, sys; a, b = (open(f, "rb").read() for f in sys.argv[1:3]); sys.stdout.buffer.write(struct.pack("<I", len(a)) + a + b)' \
            "$a" "$b" >"$dir/$orientation-$i-$j"
        done
      done
      rm -rf "$tmp"
      ;;
    fuzz_contours | fuzz_derived_writers)
      # Byte layouts in the target files; the hand-made seeds of tests/fuzz/seeds add shapes.
      for n in 1 2 3; do head -c $((100 * n + 4)) /dev/urandom >"$dir/random-$n"; done
      ;;
  esac
}

declare -A executions result
status=0
for target in "${targets[@]}"; do
  make_seeds "$target"
  corpus=$work/corpus/$target
  artifacts=$work/artifacts/$target
  mkdir -p "$corpus" "$artifacts"
  inputs=("$corpus" "$work/seeds/$target")
  for committed in tests/fuzz/seeds/$target tests/fuzz/regressions/$target; do
    [ -d "$committed" ] && inputs+=("$committed")
  done
  log=$work/$target.log
  echo "fuzz.sh: $target for ${seconds}s (log $log)"
  fork=()
  [ "$jobs" -gt 1 ] && fork=(-fork="$jobs")
  set +e
  "$build/tests/fuzz/$target" -max_total_time="$seconds" -print_final_stats=1 -timeout=30 \
    -rss_limit_mb=2048 -artifact_prefix="$artifacts/" "${fork[@]}" "${inputs[@]}" >"$log" 2>&1
  rc=$?
  set -e
  # One process prints stat::number_of_executed_units; -fork prints "#N: cov: ..." lines.
  executions[$target]=$(awk '/stat::number_of_executed_units/ {n += $NF; s = 1}
    /^#[0-9]+: cov:/ {f = substr($1, 2) + 0} END {print s ? n : f + 0}' "$log")
  if [ $rc -eq 0 ]; then
    result[$target]=ok
  else
    result[$target]="FAILED (exit $rc): $(ls "$artifacts" | head -3 | tr '\n' ' ')"
    status=1
    grep -m1 -E 'ERROR: (AddressSanitizer|libFuzzer)|runtime error|fuzz_[a-z_]+: ' "$log" >&2 || true
  fi
done

echo
printf '%-24s %14s  %s\n' target executions result
for target in "${targets[@]}"; do
  printf '%-24s %14s  %s\n' "$target" "${executions[$target]}" "${result[$target]}"
done
exit $status
