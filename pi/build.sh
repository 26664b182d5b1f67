#!/usr/bin/env bash
# Build (once, then cached in $PI_DIR/RELEASE) what the emulated Raspberry Pi runs, for each
# Raspberry Pi OS userland: bookworm (Debian 12: Python 3.11, glibc 2.36) and trixie (Debian 13,
# what Raspberry Pi OS ships since late 2025: Python 3.13, glibc 2.41):
#   root         an arm64 Debian userland with its python3, made by mmdebstrap without running
#                anything emulated (--variant=extract unpacks the packages, runs no scripts);
#   site         the runtime's pinned aarch64 wheels (pi/requirements.txt), installed by the
#                host's pip into a --target folder;
#   site-numpy1  (bookworm) the same with NumPy 1.x and tflite-runtime
#                (pi/requirements-numpy1.txt), as in a venv beside bookworm's apt picamera2.
# Usage: pi/build.sh HOST_PYTHON RELEASE   (a Python with pip: the runtime venv's; bookworm|trixie)
set -euo pipefail
cd "$(dirname "$0")/.."
host_python=${1:?usage: pi/build.sh HOST_PYTHON RELEASE}
release=${2:?usage: pi/build.sh HOST_PYTHON RELEASE}
# Each release's Python and the newest glibc its wheels may need.
case $release in
  bookworm) python=3.11 glibc=36 sites=(site=pi/requirements.txt site-numpy1=pi/requirements-numpy1.txt) ;;
  trixie) python=3.13 glibc=41 sites=(site=pi/requirements.txt) ;;
  *) echo "error: release $release: bookworm or trixie" >&2; exit 2 ;;
esac
pi_dir=${PI_DIR:-.pi}/$release
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
root_spec="mmdebstrap --arch=arm64 --variant=extract --include=python3,libstdc++6 $release"
root_key=$(echo "$root_spec merged-usr" | sha256sum | cut -c1-16)
if [ "$(cat "$pi_dir/root.key" 2>/dev/null)" != "$root_key" ]; then
  echo "building the arm64 $release userland (mmdebstrap, ~20 s)"
  rm -rf "$pi_dir/root" "$pi_dir/root.new" "$pi_dir/root.key"
  # No mirror named: mmdebstrap's default for a stable release, with its updates and security.
  if ! $root_spec "$pi_dir/root.new" >"$pi_dir/mmdebstrap.log" 2>&1; then
    tail -20 "$pi_dir/mmdebstrap.log" >&2
    echo "error: mmdebstrap failed (log: $pi_dir/mmdebstrap.log)" >&2
    exit 1
  fi
  # trixie's /lib, /bin and /sbin are merged into /usr: links a package script would make (the
  # extract variant runs none), so the ELF interpreter /lib/ld-linux-aarch64.so.1 is found.
  for dir in bin sbin lib; do
    [ -e "$pi_dir/root.new/$dir" ] || ln -s "usr/$dir" "$pi_dir/root.new/$dir"
  done
  # pi/python puts the emulated CPU's /proc/cpuinfo here (see there why).
  mkdir -p "$pi_dir/root.new/proc"
  mv "$pi_dir/root.new" "$pi_dir/root"
  echo "$root_key" >"$pi_dir/root.key"
fi

# One folder of wheels per requirements file: site (pi/requirements.txt, NumPy 2) and, on
# bookworm, site-numpy1 (pi/requirements-numpy1.txt, the picamera2 venv's NumPy 1.x).
# pip takes each --platform literally: list every glibc the release accepts (2.17..2.36 or 2.41),
# as pip on the Pi itself would; ai-edge-litert is manylinux_2_27, OpenCV 5 manylinux_2_28.
abi=cp${python/./}
pip_spec=(--only-binary=:all: --python-version "$python" --implementation cp --abi "$abi")
pip_spec+=(--platform manylinux2014_aarch64)
for minor in $(seq 17 "$glibc"); do pip_spec+=(--platform "manylinux_2_${minor}_aarch64"); done
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
for site in "${sites[@]}"; do install_wheels "${site#*=}" "$pi_dir/${site%%=*}"; done
