#!/usr/bin/env bash
# Installs the Debian 12 packages segnode needs to build, run and test. Idempotent: it only
# calls apt-get when something is missing. Runs as root, or through sudo when available.
set -euo pipefail

packages=(
  # toolchain
  g++ cmake ninja-build pkg-config
  # libFuzzer targets (scripts/fuzz.sh): clang 14 with its runtime (libclang_rt.fuzzer, ASan,
  # UBSan) and llvm-symbolizer for readable crash stacks
  clang libclang-rt-14-dev llvm
  # format-check in CI
  clang-format
  # libraries
  libdcmtk-dev libsqlite3-dev libspdlog-dev libfmt-dev libcli11-dev libtomlplusplus-dev
  nlohmann-json3-dev libssl-dev libgtest-dev libgmock-dev libboost-dev
  # JPEG 2000 decoding in the series loader (OpenJPEG; DCMTK 3.6.7 has no JPEG 2000 codec)
  libopenjp2-7-dev
  # image IO (NIfTI, NRRD; zlib for .nii.gz) of segnode_imageio; also the benchmarks' ITK
  libinsighttoolkit5-dev zlib1g-dev
  # runtime data: the DICOM dictionary comes with libdcmtk17
  libdcmtk17
  # real peers and independent checkers used by the tests and benchmarks
  dcmtk dicom3tools python3 python3-pydicom python3-numpy python3-nibabel python3-requests
  # reference DICOM -> NIfTI converter for the benchmarks
  dcm2niix
  # independent JPEG 2000 decoders/encoders for the tests and the JPEG 2000 load benchmark
  libopenjp2-tools libgdcm-tools
  # a real PACS for the end-to-end tests, and an RTSTRUCT reader we did not write
  orthanc plastimatch
  # the Debian package (cpack -G DEB): shlibdeps, man page, lintian; systemd-analyze for the
  # unit's exposure score; adduser for the package's postinst
  dpkg-dev help2man lintian systemd adduser
  # an independent Prometheus text parser (tests/integration/test_metrics.py) and the HTTP
  # load generator of bench/http_bench.py
  python3-prometheus-client wrk
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install-deps: missing packages (${missing[*]}) and not root; install them as root" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
