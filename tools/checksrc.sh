#!/usr/bin/env bash
# Style gate: banned calls in library code (STYLE.md) and clang-format conformance.
set -uo pipefail
cd "$(dirname "$0")/.."
fail=0
lib_dirs=(runtime plugins backends)
banned='\b(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|atoll|gets|exit|abort)[[:space:]]*\('
if hits=$(grep -rnE "$banned" "${lib_dirs[@]}" --include='*.c' --include='*.h' --include='*.cu' --include='*.cuh' |
          grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/\*|\*|//)'); then
    echo "checksrc: banned calls in library code:" >&2
    echo "$hits" >&2
    fail=1
fi
if hits=$(grep -rnE '\b(printf|puts|putchar)[[:space:]]*\(' "${lib_dirs[@]}" --include='*.c' \
          --include='*.h' --include='*.cu' --include='*.cuh' | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/\*|\*|//)'); then
    echo "checksrc: library code writes to stdout:" >&2
    echo "$hits" >&2
    fail=1
fi
if command -v clang-format >/dev/null; then
    files=$(git ls-files '*.c' '*.h' '*.cu' '*.cuh' | grep -v '^tests/fixtures/')
    if [ -n "$files" ] && ! clang-format --dry-run --Werror $files 2>/tmp/checksrc.fmt; then
        echo "checksrc: not clang-formatted (run: clang-format -i FILE):" >&2
        grep -oE '^[^:]+\.(c|h|cuh|cu)' /tmp/checksrc.fmt | sort -u >&2
        fail=1
    fi
fi
[ $fail -eq 0 ] && echo "checksrc: ok"
exit $fail
