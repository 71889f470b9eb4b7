#!/usr/bin/env bash
# System packages some tests use, from Debian: headless Chromium (tests/service/test_browser.py;
# Playwright's own browser download is not used), PostgreSQL with its contrib extensions (Prefect's
# server needs pg_trgm: tests/service/test_serve_postgres.py) and promtool (tests/ops).
# Idempotent: installs only what is missing. Without apt-get, or without root or sudo, it says so
# and exits 0; the tests that need a missing package then skip, naming it.
set -euo pipefail

missing=()
{ [[ -x /usr/bin/chromium ]] || command -v chromium >/dev/null 2>&1; } || missing+=(chromium fonts-liberation)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[[ ${#missing[@]} -eq 0 ]] && exit 0

say() { echo "system-deps: $*" >&2; }
if ! command -v apt-get >/dev/null 2>&1; then
    say "no apt-get here; install ${missing[*]} yourself (the tests that need them skip)"
    exit 0
fi
SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        say "not root and no sudo; install ${missing[*]} yourself (the tests that need them skip)"
        exit 0
    fi
fi
say "installing ${missing[*]} with apt-get"
if ! { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
       "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
           --no-install-recommends "${missing[@]}"; }; then
    say "apt-get could not install ${missing[*]}; the tests that need them skip"
fi
exit 0
