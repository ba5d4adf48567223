#!/usr/bin/env python3
"""Write a large random checkpoint for the load benchmark (never committed).

BERT-shaped by default: hidden 1536, 24 layers, 24 heads, intermediate 6144, vocab 30522 in
bfloat16 -- about 0.72 B parameters, 1.45 GB. Weights are random (torch.randn, seed 0) and
written by transformers' save_pretrained, so the file is exactly what a user would have.

    python3 tools/make_bench_model.py [--out bench/models/bert-1b-bf16] [--max-shard-size 5GB]
"""
import argparse
import os

import torch
from transformers import BertConfig, BertModel


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out", default=os.path.join(root, "bench", "models", "bert-1b-bf16"))
    ap.add_argument("--max-shard-size", default="5GB")
    args = ap.parse_args()
    if os.path.exists(os.path.join(args.out, "config.json")):
        print(f"{args.out}: already there")
        return
    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=1536, num_hidden_layers=24, num_attention_heads=24,
                     intermediate_size=6144, dtype="bfloat16")
    with torch.device("meta"):
        model = BertModel(cfg)
    model = model.to_empty(device="cpu").to(torch.bfloat16)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    model.save_pretrained(args.out, max_shard_size=args.max_shard_size)
    size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"{args.out}: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters, "
          f"{size / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
