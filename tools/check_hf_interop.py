#!/usr/bin/env python3
"""Check that Hugging Face transformers loads what `ptm save` writes (dev time; needs torch).

For each BERT fixture, ptm saves it single-file, sharded (tiny max shard size), with a variant
and as bfloat16; transformers then loads each output with from_pretrained and must reproduce
the fixture's reference outputs (bf16: within the bf16 tolerance). Usage:

    python3 tools/check_hf_interop.py [--ptm build/bin/ptm]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
import transformers
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
CASES = [
    ("single", [], None, 1e-5),
    ("sharded", ["--max-shard-size", "20KB"], None, 1e-5),
    ("variant", ["--variant", "v1"], "v1", 1e-5),
    ("bf16", ["--dtype", "bfloat16"], None, 6e-2),
]


def run_case(ptm, fixture, extra, variant, tol, out):
    subprocess.run([ptm, "save", os.path.join(FIXTURES, fixture), out] + extra, check=True,
                   capture_output=True)
    cls = getattr(transformers, transformers.AutoConfig.from_pretrained(out).architectures[0])
    kw = {"variant": variant} if variant else {}
    model = cls.from_pretrained(out, attn_implementation="eager", dtype=torch.float32, **kw).eval()
    inputs = load_file(os.path.join(FIXTURES, fixture, "inputs.safetensors"))
    want = load_file(os.path.join(FIXTURES, fixture, "outputs.safetensors"))
    with torch.no_grad():
        got = model(**inputs, output_hidden_states=True)
    worst = 0.0
    for name, ref in want.items():
        if name.startswith("hidden_states."):
            val = got.hidden_states[int(name.split(".")[1])]
        elif name == "last_hidden_state" and not hasattr(got, name):  # a head's encoder output
            val = got.hidden_states[-1]
        else:
            val = getattr(got, name)
        worst = max(worst, (val.float() - ref).abs().max().item())
    return worst <= tol, worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ptm", default=os.path.join(ROOT, "build", "bin", "ptm"))
    args = ap.parse_args()
    failed = skipped = 0
    fixtures = sorted(d for d in os.listdir(FIXTURES) if d.startswith("bert-tiny"))
    for fixture in fixtures:
        # transformers 5 dropped head pruning: it cannot load a pruned checkpoint at all.
        with open(os.path.join(FIXTURES, fixture, "config.json")) as f:
            pruned = json.load(f).get("pruned_heads")
        if pruned and not hasattr(transformers.PreTrainedModel, "prune_heads"):
            print(f"skip {fixture:22s} transformers {transformers.__version__} has no head pruning")
            skipped += len(CASES)
            continue
        for label, extra, variant, tol in CASES:
            with tempfile.TemporaryDirectory() as out:
                # A bf16 fixture's references are transformers' bf16 outputs.
                ok, worst = run_case(args.ptm, fixture, extra, variant,
                                     max(tol, 6e-2) if "bf16" in fixture else tol, out)
            failed += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {fixture:22s} {label:8s} max abs diff {worst:.3g}")
    print(f"{len(fixtures) * len(CASES) - failed - skipped} passed, {failed} failed, "
          f"{skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
