#!/usr/bin/env bash
# Set up everything the tests need and run them: the README's test command, and CI's.
#
#   bash scripts/test.sh [pytest args...]
#
# As root on Debian/Ubuntu it installs the system tools the tests drive for real
# (tshark, tcpdump, haproxy, nginx, iptables, ...).  Without root, tests that need
# root or a missing tool are skipped with the reason shown.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(tshark tcpdump wireshark-common haproxy nginx iptables nftables conntrack
              iproute2 openssl procps psmisc chromium)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${DEB_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
echo "== installing rstscope with test extras"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 \
  | grep -v '^WARNING: Location' || true

echo "== ruff"
.venv/bin/ruff check rstscope tests benchmarks scripts
echo "== mypy"
.venv/bin/mypy rstscope scripts benchmarks
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
