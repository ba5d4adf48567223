#!/bin/sh
# tests/fuzz/run.sh SECONDS [TARGET] - build a libFuzzer target (default: fuzz_safetensors)
# with clang, ASan and UBSan against the runtime sources directly, and run it for SECONDS
# seconds seeded with tests/fixtures/bad and tests/fixtures/st. Exits non-zero on a crash.
# Build output and the working corpus go to $PTM_FUZZ_DIR (default build-fuzz/ in the repo).
set -eu
SECONDS_TO_RUN="${1:-60}"
TARGET="${2:-fuzz_safetensors}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${PTM_FUZZ_DIR:-$ROOT/build-fuzz}"
mkdir -p "$OUT/corpus-$TARGET"
: >"$OUT/build.log"

# The whole runtime, compiled with the target; files that do not build yet (work in progress
# elsewhere) are skipped with a note, so the reader can be fuzzed on its own.
objs=""
for src in "$ROOT"/runtime/*.c; do
    obj="$OUT/$(basename "$src" .c).o"
    if clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer-no-link,address,undefined \
        -fno-sanitize-recover=undefined -I"$ROOT/sdk/include" -I"$ROOT/runtime" \
        -DPTM_PLUGIN_RELDIR='"ptm/plugins"' -c "$src" -o "$obj" 2>>"$OUT/build.log"; then
        objs="$objs $obj"
    else
        echo "run.sh: skipping $(basename "$src") (does not compile; see $OUT/build.log)" >&2
    fi
done
# Link only what links: try everything, and fall back to the reader's own files.
link() {
    clang -g -O1 -fsanitize=fuzzer,address,undefined -I"$ROOT/sdk/include" -I"$ROOT/runtime" \
        -DPTM_FUZZ_FIXTURES="\"$ROOT/tests/fixtures/tok\"" \
        "$ROOT/tests/fuzz/$TARGET.c" "$@" -o "$OUT/$TARGET" \
        -ljson-c -lutf8proc -lpcre2-32 -luv -lcurl -ldl -lm -lpthread
}
if ! link $objs 2>"$OUT/link.log"; then
    echo "run.sh: full runtime does not link; using the $TARGET files only" >&2
    few=""
    names="alloc error log dtype json_strict safetensors safetensors_index st_write st_save"
    if [ "$TARGET" = fuzz_tokenizer ]; then
        names="alloc error log tokenizer $(cd "$ROOT/runtime" && ls tok_*.c | sed 's/\.c$//')"
    fi
    for n in $names; do
        few="$few $OUT/$n.o"
    done
    link $few
fi

seeds="$ROOT/tests/fixtures/bad"
[ -d "$ROOT/tests/fixtures/st" ] && seeds="$seeds $ROOT/tests/fixtures/st"
# fuzz_tokenizer: byte 0 picks the mode (encode with a fixture tokenizer, or parse JSON).
[ "$TARGET" = fuzz_tokenizer ] && seeds="$ROOT/tests/fixtures/tok/bad"
# -max_len: headers are tiny; the interesting structure fits in 4 KiB.
"$OUT/$TARGET" -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=10 \
    -print_final_stats=1 "$OUT/corpus-$TARGET" $seeds
