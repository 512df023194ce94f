#!/bin/sh
# Writes the hash-pinned locks in this folder from their .in files, with uv (itself locked in
# tools.txt): `make lock` keeps every pin that still fits, `make upgrade-deps` (this script with
# --upgrade) moves every package to its newest release within setup.py's and the .in's ranges.
# One universal lock per virtualenv fits every Python from 3.11 on (markers choose per version).
# Then it prints which name==version lines moved.
# Usage: requirements/lock.sh UV [--upgrade]
set -eu
UV=$1
shift
cd "$(dirname "$0")/.."
# --no-config and --index-url: the machine's own pip or uv settings (mirrors, extra indexes) never
# leak into a lock; the hashes are those of the files on PyPI.
FLAGS="--no-config --universal --python-version 3.11 --generate-hashes --no-header --quiet
       --index-url https://pypi.org/simple $*"
old=$(mktemp -d)
trap 'rm -rf "$old"' EXIT

lock() {  # lock NAME WHAT SOURCES UV-ARGUMENTS...
    name=$1 what=$2 sources=$3
    shift 3
    [ -e "requirements/$name.txt" ] || : > "requirements/$name.txt"
    cp "requirements/$name.txt" "$old/$name.txt"
    # shellcheck disable=SC2086
    "$UV" pip compile $FLAGS -o "$old/$name.new" "$@" >/dev/null
    {
        echo "# Lock for $what: every package, direct and transitive, pinned with its hashes."
        echo "# Made from $sources by \`make upgrade-deps\` or \`make lock\` (requirements/lock.sh);"
        echo "# do not edit by hand.  The Makefile installs it: pip install --require-hashes -r <this file>"
        cat "$old/$name.new"
    } > "$old/$name.locked"
    # An unchanged lock keeps its time stamp: the virtualenvs made from it stay up to date.
    cmp -s "$old/$name.locked" "requirements/$name.txt" || cp "$old/$name.locked" "requirements/$name.txt"
}

lock venv .venv "setup.py (with the test extra) and requirements/venv.in" \
    setup.py requirements/venv.in --extra test
lock venv-interop .venv-interop requirements/venv-interop.in requirements/venv-interop.in
lock tools ".venv-tools (the lock tool)" requirements/tools.in requirements/tools.in

versions() { grep -E '^[A-Za-z0-9]' "$1" | sed 's/ *\\$//' | sort -u; }
moved=0
for name in venv venv-interop tools; do
    versions "$old/$name.txt" > "$old/$name.before"
    versions "requirements/$name.txt" > "$old/$name.after"
    if ! diff -u --label "before/$name.txt" --label "after/$name.txt" "$old/$name.before" "$old/$name.after"
    then
        moved=1
    fi
done
[ "$moved" = 1 ] || echo "No version moved."
