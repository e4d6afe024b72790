#!/usr/bin/env bash
# Debian packages: Pango (WeasyPrint renders invoice PDFs with it) for `make run`; for `make test`
# also Chromium (browser tests), PostgreSQL 15 (the second test run), poppler-utils (reading PDFs
# back), Redis (the rate limit shared by two app instances). Installed when missing and we are root; otherwise a loud note.
# Usage: system-deps.sh [run|test]   (default: test)
set -u
mode="${1:-test}"
need=()
ldconfig -p 2>/dev/null | grep -q libpangoft2-1.0 || need+=(libpango-1.0-0 libpangoft2-1.0-0)
if [ "$mode" = "test" ]; then
command -v chromium >/dev/null 2>&1 || need+=(chromium)
{ command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || need+=(postgresql)
command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
fi
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || echo "!!! apt-get could not install: ${need[*]}" >&2
else
  echo "!!! Missing Debian packages: ${need[*]} (not root, so not installed)." >&2
  echo "!!! The tests that need them will be SKIPPED (and FAIL under CI=true)." >&2
fi
exit 0
