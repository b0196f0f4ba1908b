#!/usr/bin/env bash
# A newcomer's first session, as a script: a fresh venv in a temporary directory, the README's
# quick-start command verbatim (install, then `ponder ask` on its question, every output line
# timestamped to show that it streams), `ponder doctor`, and `ponder serve` with a mistake in
# its configuration (expected: one line, a non-zero exit). Prints a transcript and a verdict.
#
#   bash bench/newcomer.sh              # pip's cache as it is: a llama-cpp-python wheel that
#                                       # pip built before is reused (minutes, not ~5 more)
#   bash bench/newcomer.sh --cold       # no pip cache, no model cache: compiles llama.cpp
#                                       # and downloads the model, as on a new machine
#   bash bench/newcomer.sh | tee bench/results/newcomer.txt
#
# The working tree (tracked and untracked files git does not ignore) is what gets installed,
# so uncommitted changes are tried too. Not in CI: it takes minutes and downloads.
set -uo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
COLD=0
[[ "${1:-}" == "--cold" ]] && COLD=1
WORK="$(mktemp -d -t ponder-newcomer.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
STAMP="python3 $REPO/bench/stamp.py"
FAILED=0

say() { printf '\n### %s\n' "$*"; }
check() {  # check DESCRIPTION COMMAND...: one verdict line
    if "${@:2}"; then echo "PASS $1"; else echo "FAIL $1"; FAILED=1; fi
}

# A newcomer's own state: no ponder configuration, ledger or (with --cold) caches.
export XDG_CONFIG_HOME="$WORK/config" XDG_DATA_HOME="$WORK/data"
if [[ $COLD == 1 ]]; then
    export XDG_CACHE_HOME="$WORK/cache" PIP_NO_CACHE_DIR=1
fi

say "checkout: the working tree of $REPO, copied to $WORK/ponder"
mkdir -p "$WORK/ponder"
# (--ignore-failed-read: a file deleted but not yet committed is skipped, as it should be.)
(cd "$REPO" && git ls-files --cached --others --exclude-standard -z \
    | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$WORK/ponder"
cd "$WORK/ponder" || exit 1

say "python3 -m venv .venv && . .venv/bin/activate"
python3 -m venv .venv && . .venv/bin/activate
python --version

# The README's quick-start command, exactly as written there.
QUICK="$(sed -n '/^## Quick start/,/^## /p' README.md | awk '/^```bash/{f=1;next} /^```/{if(f)exit} f')"
say "\$ $QUICK"
# pip's own lines, but the ones about each package it finds already, are dropped: what
# stays is what it built or reused and what it installed.
$STAMP --tty bash -c "$QUICK" > "$WORK/quick.txt" 2>&1
QUICK_RC=$(tail -1 "$WORK/quick.txt" | sed -n 's/.*exit \([0-9-]*\)$/\1/p')
grep -Ev 'out\| *(Collecting|Downloading|Requirement already|Obtaining|Preparing|Getting|Checking|Installing (build|backend)|Created wheel|Stored in|Building wheel for|Using cached [^l])|(out|err)\| *━' "$WORK/quick.txt" | cut -c1-220
check "install and ask exit 0" test "$QUICK_RC" = 0
check "the answer is 72" grep -q 'out| Answer: .*72' "$WORK/quick.txt"
STREAMED=$(grep -c 'err| .*writing 1 path' "$WORK/quick.txt")
check "the answer streamed ($STREAMED timestamped views of it being written)" test "$STREAMED" -ge 3
check "it ended with a summary line" grep -q 'err| tokens: .* · auto on ' "$WORK/quick.txt"

say "\$ ponder doctor"
$STAMP ponder doctor | cut -c1-220

say "\$ ponder --config mistaken.toml serve   (mistaken.toml: defualt_model = ...)"
printf 'defualt_model = "qwen2.5-coder-1.5b-instruct"\n' > mistaken.toml
ponder --config mistaken.toml serve > "$WORK/serve.txt" 2>&1
SERVE_RC=$?
cat "$WORK/serve.txt"
echo "(exit $SERVE_RC)"
check "serve with a mistaken config exits non-zero" test "$SERVE_RC" -ne 0
check "and says so in one line" test "$(wc -l < "$WORK/serve.txt")" -eq 1

say "verdict"
[[ $FAILED == 0 ]] && echo "all checks passed" || echo "some checks FAILED"
exit $FAILED
