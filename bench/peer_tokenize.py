#!/usr/bin/env python3
"""The peer of bench_tokenize: Hugging Face tokenizers (Rust) encoding the same corpus with
encode_batch on one thread (RAYON_NUM_THREADS=1), padding and truncation off, as ptm does.

Protocol: the parent writes "run PATH/tokenizer.json"; this process encodes every corpus line
once (timed) and answers "ms <float> tokens <int>". "quit" ends it.
Usage: peer_tokenize.py CORPUS
"""
import os
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from tokenizers import Tokenizer  # noqa: E402


def main():
    with open(sys.argv[1], "rb") as f:
        lines = [raw.rstrip(b"\n").decode("utf-8", errors="replace") for raw in f]
    cache = {}
    print("ready", flush=True)
    for line in sys.stdin:
        parts = line.split(maxsplit=1)
        if not parts or parts[0] == "quit":
            break
        path = parts[1].strip()
        if path not in cache:
            tok = Tokenizer.from_file(path)
            tok.no_padding()
            tok.no_truncation()
            cache[path] = tok
        t0 = time.perf_counter()
        out = cache[path].encode_batch(lines)
        dt = time.perf_counter() - t0
        print(f"ms {dt * 1e3:.3f} tokens {sum(len(e.ids) for e in out)}", flush=True)


if __name__ == "__main__":
    main()
