#!/usr/bin/env python3
"""The peer of bench_load: transformers' from_pretrained on the same checkpoint, timed the
same way (wall time of the call, after a warm-up that fills the page cache), and the RSS it
adds. Prints "ms <median> rss_mb <growth of the first load>". Usage: peer_load.py DIR RUNS
"""
import os
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoModel  # noqa: E402


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def main():
    directory, runs = sys.argv[1], int(sys.argv[2])
    before = rss_mb()
    model = AutoModel.from_pretrained(directory, dtype=torch.bfloat16)
    growth = rss_mb() - before
    del model
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model = AutoModel.from_pretrained(directory, dtype=torch.bfloat16)
        times.append((time.perf_counter() - t0) * 1e3)
        del model
    print(f"ms {statistics.median(times):.2f} rss_mb {growth:.1f}", flush=True)


if __name__ == "__main__":
    main()
