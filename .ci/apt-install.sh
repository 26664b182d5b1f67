#!/usr/bin/env bash
# Install Debian packages (as root, else through sudo), waiting while another apt or dpkg runs: a
# fresh machine may be running unattended-upgrades, and `make test` installs beside `make setup`.
# dpkg's own lock is waited for with DPkg::Lock::Timeout; apt 2.6 has no such wait for the package
# lists' and archives' locks (exit 100 at once), so a command refused for a lock is run again.
# Usage: .ci/apt-install.sh PACKAGE...
set -euo pipefail
sudo=$([ "$(id -u)" = 0 ] || echo sudo)
wait_s=${APT_LOCK_WAIT_S:-1800}
deadline=$((SECONDS + wait_s))

apt_waiting_for_locks() {
  local output
  until output=$("$@" 2>&1); do
    if ! grep -q "Could not get lock\|Unable to acquire the dpkg frontend lock" <<<"$output" ||
      ((SECONDS > deadline)); then
      echo "$output" >&2
      return 100
    fi
    sleep 1
  done
}

apt_waiting_for_locks $sudo apt-get -o DPkg::Lock::Timeout="$wait_s" update -qq
apt_waiting_for_locks $sudo env DEBIAN_FRONTEND=noninteractive \
  apt-get -o DPkg::Lock::Timeout="$wait_s" install -y -qq "$@"
