#!/usr/bin/env bash
# Build (once, then cached in $PI_DIR) what the emulated Raspberry Pi runs:
#   $PI_DIR/root  an arm64 Debian bookworm userland with python3.11 (what Raspberry Pi OS bookworm
#                 is built on: Python 3.11, glibc 2.36), made by mmdebstrap without running
#                 anything emulated (--variant=extract unpacks the packages, runs no scripts);
#   $PI_DIR/site  the runtime's pinned aarch64 wheels (pi/requirements.txt), installed by the
#                 host's pip into a --target folder; $PI_DIR/site-numpy1 the same with NumPy 1.x
#                 (pi/requirements-numpy1.txt), as in a venv beside apt's picamera2.
# Usage: pi/build.sh HOST_PYTHON   (a Python with pip: the runtime venv's)
set -euo pipefail
cd "$(dirname "$0")/.."
host_python=${1:?usage: pi/build.sh HOST_PYTHON}
pi_dir=${PI_DIR:-.pi}
mkdir -p "$pi_dir"

# A fresh machine has neither tool: install them from Debian (CI runs as root; elsewhere sudo).
missing=()
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  bash .ci/apt-install.sh "${missing[@]}"
fi

# Each folder is rebuilt when what it is built from changes; built beside, then renamed into
# place, so an interrupted build is never taken for a finished one.
root_spec="mmdebstrap --arch=arm64 --variant=extract --include=python3,libstdc++6 bookworm"
root_key=$(echo "$root_spec" | sha256sum | cut -c1-16)
if [ "$(cat "$pi_dir/root.key" 2>/dev/null)" != "$root_key" ]; then
  echo "building the arm64 bookworm userland (mmdebstrap, ~20 s)"
  rm -rf "$pi_dir/root" "$pi_dir/root.new" "$pi_dir/root.key"
  # No mirror named: mmdebstrap's default for a stable release, with its updates and security.
  if ! $root_spec "$pi_dir/root.new" >"$pi_dir/mmdebstrap.log" 2>&1; then
    tail -20 "$pi_dir/mmdebstrap.log" >&2
    echo "error: mmdebstrap failed (log: $pi_dir/mmdebstrap.log)" >&2
    exit 1
  fi
  # pi/python puts the emulated CPU's /proc/cpuinfo here (see there why).
  mkdir -p "$pi_dir/root.new/proc"
  mv "$pi_dir/root.new" "$pi_dir/root"
  echo "$root_key" >"$pi_dir/root.key"
fi

# One folder of wheels per requirements file: site (pi/requirements.txt, NumPy 2) and
# site-numpy1 (pi/requirements-numpy1.txt, the picamera2 venv's NumPy 1.x).
# pip takes each --platform literally: list every glibc a bookworm system accepts (2.17..2.36),
# as pip on the Pi itself would; ai-edge-litert is manylinux_2_27, OpenCV 5 manylinux_2_28.
pip_spec=(--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311)
pip_spec+=(--platform manylinux2014_aarch64)
for minor in $(seq 17 36); do pip_spec+=(--platform "manylinux_2_${minor}_aarch64"); done
install_wheels() {
  local requirements=$1 site=$2 key
  key=$( (cat "$requirements" && echo "${pip_spec[*]}") | sha256sum | cut -c1-16)
  [ "$(cat "$site.key" 2>/dev/null)" != "$key" ] || return 0
  echo "installing the aarch64 wheels of $requirements"
  rm -rf "$site" "$site.new" "$site.key"
  "$host_python" -m pip install --quiet --disable-pip-version-check --target "$site.new" \
    "${pip_spec[@]}" -r "$requirements"
  mv "$site.new" "$site"
  echo "$key" >"$site.key"
}
install_wheels pi/requirements.txt "$pi_dir/site"
install_wheels pi/requirements-numpy1.txt "$pi_dir/site-numpy1"
