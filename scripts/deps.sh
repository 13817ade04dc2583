#!/usr/bin/env bash
# Installs the system packages building tokengate needs on Debian/Ubuntu (cmake and a C
# toolchain for pingora's and aws-lc's native parts, curl for the quick-start recipe), and
# Python's PyJWT for one test. Does nothing when they are already there.
set -euo pipefail
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v cargo >/dev/null 2>&1 || { echo "deps.sh: cargo is required (https://rustup.rs)" >&2; exit 1; }
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "deps.sh: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Tests use a real client library, Python's PyJWT (with cryptography): it signs client
# assertions and DPoP proofs and verifies access tokens' `aud`. pip first; a system Python that refuses pip (PEP 668) gets Debian's.
if ! python3 -c 'import jwt, cryptography' >/dev/null 2>&1; then
  echo "deps.sh: installing PyJWT and cryptography for the tests" >&2
  if ! python3 -m pip install --quiet --disable-pip-version-check "PyJWT[crypto]==2.10.1" >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3 python3-jwt python3-cryptography >/dev/null
  fi
fi
