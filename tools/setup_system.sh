#!/usr/bin/env bash
# Install the Debian packages that tools/live/ needs (ffmpeg + GStreamer RTSP server).
#
# Idempotent: when every package is already installed it exits at once, without
# touching the network (no `apt-get update`). Run as root (or via sudo).
# Exit status: 0 when everything is present afterwards, non-zero with a message otherwise.
set -euo pipefail

PACKAGES=(
  ffmpeg                       # HTTP-TS / FLV / MJPEG / HLS servers (tools/live/servers.py)
  python3-gi                   # GObject introspection for the system python3
  python3-gst-1.0              # Gst python overrides
  gir1.2-gst-rtsp-server-1.0   # GstRtspServer (tools/live/rtsp_server.py)
  gstreamer1.0-plugins-base    # appsrc, videoconvert, videoscale, decodebin
  gstreamer1.0-plugins-good    # rtph264pay, qtdemux, matroskademux
  gstreamer1.0-plugins-ugly    # x264enc
  gstreamer1.0-plugins-bad     # h264parse (lets decodebin handle raw/TS H.264 files)
  gstreamer1.0-libav           # avdec_h264 and friends (decoding --file input)
  gstreamer1.0-tools           # gst-inspect-1.0 / gst-launch-1.0 (diagnostics)
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]})); then
  echo "setup_system: installing: ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "setup_system: ERROR: not root and no sudo; cannot install ${missing[*]}" >&2; exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get update -qq; then
    echo "setup_system: ERROR: apt-get update failed (no package registry reachable?)" >&2; exit 1
  fi
  if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    echo "setup_system: ERROR: apt-get install failed for: ${missing[*]}" >&2; exit 1
  fi
fi

# Functional check: the pieces tools/live actually uses.
command -v ffmpeg >/dev/null || { echo "setup_system: ERROR: ffmpeg not on PATH" >&2; exit 1; }
/usr/bin/python3 - <<'PY' || { echo "setup_system: ERROR: GStreamer RTSP check failed" >&2; exit 1; }
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer  # noqa: F401
Gst.init(None)
need = ["appsrc", "videoconvert", "videoscale", "x264enc", "rtph264pay", "decodebin", "appsink"]
absent = [n for n in need if Gst.ElementFactory.find(n) is None]
if absent:
    raise SystemExit("missing GStreamer elements: " + ", ".join(absent))
PY
echo "setup_system: ok (ffmpeg + GStreamer RTSP server present)"
