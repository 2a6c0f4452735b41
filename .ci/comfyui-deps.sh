#!/usr/bin/env bash
# Test tooling for the ComfyUI node and browser tests on a fresh Debian 12 machine, as root.
# ComfyUI itself (COMFYUI_PATH, default /opt/ComfyUI) and its requirements.txt are set up
# separately; this adds what those requirements miss here and the headless browser.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
apt-get update
# Headless Chromium and its WebDriver from Debian (no browser download at run time).
apt-get install -y --no-install-recommends chromium chromium-driver

python -m pip install \
  "torchsde==0.2.6" \
  "selenium==4.50.0" \
  "websocket-client==1.9.2"
