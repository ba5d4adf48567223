#!/usr/bin/env bash
# The SDK check (run by ctest as sdk_external_plugin): install ptm to a temporary prefix,
# build tests/external_plugin against it twice (CMake package, then pkg-config), load each
# with the installed ptm CLI, and check two design rules: each plugin exports exactly one
# ptm_ symbol, and no file in runtime/ names an architecture.
set -euo pipefail
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "sdk check: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib* | head -1)
[ -f "$tmp/prefix/include/ptm/ptm.h" ] || fail "headers not installed"

# 1. CMake package: find_package(ptm) -> ptm::ptm.
cmake -S "$src/tests/external_plugin" -B "$tmp/b-cmake" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
    >/dev/null
cmake --build "$tmp/b-cmake" >/dev/null
# 2. pkg-config.
mkdir -p "$tmp/b-pc"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
# shellcheck disable=SC2046
cc -std=c11 -shared -fPIC -fvisibility=hidden $(pkg-config --cflags ptm) \
    "$src/tests/external_plugin/external.c" -o "$tmp/b-pc/libptm-external.so" \
    $(pkg-config --libs ptm)

for dir in "$tmp/b-cmake" "$tmp/b-pc"; do
    out=$(PTM_PLUGIN_PATH="$dir" "$tmp/prefix/bin/ptm" plugins --json)
    echo "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
ext = [p for p in d["plugins"] if p["name"] == "external"]
assert ext, "external plugin not listed"
assert ext[0]["model_types"][0]["model_type"] == "ext", ext
assert ext[0]["model_types"][0]["classes"] == ["ExtModel"], ext
' || fail "plugin built in $dir did not load: $out"
done

# Exactly one exported ptm_ symbol per plugin, bundled and external alike.
for so in "$libdir"/ptm/plugins/*.so "$tmp/b-cmake/libptm-external.so" "$tmp/b-pc/libptm-external.so"; do
    [ -e "$so" ] || continue
    syms=$(nm -D --defined-only "$so" | awk '{print $3}' | grep '^ptm' || true)
    [ "$syms" = "ptm_plugin_entry" ] || fail "$so exports: $syms"
done

# Rule 2 of the design: the runtime knows no architecture by name: no model type as a string
# literal, no architecture-prefixed identifier. (Prose may mention BERT-style tokenizers.)
if grep -rnE '"(bert|llama|t5|gpt2|roberta|mistral|qwen2?)"|\b(bert|llama|t5)_[a-z]' \
        "$src/runtime"; then
    fail "runtime/ names an architecture (above)"
fi
echo "sdk check: ok"
