#!/usr/bin/env bash
# Installs the Debian packages the tests need when their commands are missing: `make test` runs this first.
# Arguments are COMMAND=PACKAGE pairs. Uses apt-get as root, or through sudo; says what to install where neither works.
set -euo pipefail
missing=()
for pair in "$@"; do
    command="${pair%%=*}"
    package="${pair#*=}"
    # Also where Debian keeps server binaries off PATH (PostgreSQL's initdb lives in /usr/lib/postgresql/N/bin).
    [[ "$command" == /* ]] && { [ -e "$command" ] || missing+=("$package"); continue; }
    command -v "$command" >/dev/null 2>&1 || [ -x "/usr/sbin/$command" ] \
        || compgen -G "/usr/lib/postgresql/*/bin/$command" >/dev/null || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
else
    echo "The tests need these Debian packages: ${missing[*]}" >&2
    echo "Install them as root (apt-get install ${missing[*]}), then run make test again." >&2
    exit 1
fi
echo "installing ${missing[*]} (apt-get)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
