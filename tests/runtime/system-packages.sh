#!/usr/bin/env bash
# The Debian packages the runtime's tests drive: chromium (serve's page, through Playwright's pip
# package, never `playwright install`), Xvfb (the camera window; Pillow's ImageGrab screenshots it),
# the libGL that opencv-python's GUI loads, and Mosquitto (the MQTT tests' broker, with openssl for
# its TLS certificate). Installed when missing, as pi/build.sh does.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v Xvfb >/dev/null || missing+=(xvfb)
[ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v openssl >/dev/null || missing+=(openssl)
[ -e /usr/lib/x86_64-linux-gnu/libGL.so.1 ] || [ -e /usr/lib/aarch64-linux-gnu/libGL.so.1 ] || missing+=(libgl1)
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  bash .ci/apt-install.sh "${missing[@]}"
fi
