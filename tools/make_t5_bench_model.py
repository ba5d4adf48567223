#!/usr/bin/env python3
"""Write the t5-small-shaped random checkpoint of bench/bench_t5 (never committed), and its
CTranslate2 conversions.

T5Config's defaults, which are t5-small's shape (and its decoder_start_token_id 0): d_model 512, d_ff 2048, d_kv 64, 6 encoder and
6 decoder layers, 8 heads, vocab 32128, relu feed-forward, tied embeddings. The weights are
transformers' own T5 initialisation from torch.manual_seed(0), written by save_pretrained in
float32, so the files are what a user would have. A word-level tokenizer over placeholder
tokens ("<pad>", "</s>", "<unk>", then "t3" .. "t32127") goes beside them: CTranslate2's
converter needs a tokenizer for the vocabulary and takes tokens, not ids, so token "t<id>" is
id <id> in every engine. Then ct2-transformers-converter writes <out>-ct2 (float32) and
<out>-ct2-int8 (--quantization int8).

    python3 tools/make_t5_bench_model.py [--out bench/models/t5-small-random]
"""
import argparse
import os
import shutil
import subprocess
import sys

import torch
from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration


def make_tokenizer(vocab_size):
    """A word-level tokenizer whose token i is "t<i>" (the three specials first)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    specials = ["<pad>", "</s>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials)}
    vocab.update({f"t{i}": i for i in range(len(specials), vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>")


def convert(model_dir, out_dir, quantization):
    """ct2-transformers-converter on model_dir (the converter CTranslate2 ships)."""
    if os.path.exists(os.path.join(out_dir, "model.bin")):
        print(f"{out_dir}: already there")
        return
    cmd = ["ct2-transformers-converter", "--model", model_dir, "--output_dir", out_dir,
           "--force"]
    if quantization:
        cmd += ["--quantization", quantization]
    if shutil.which(cmd[0]) is None:  # the console script is not on PATH: the module itself
        cmd = [sys.executable, "-m", "ctranslate2.converters.transformers"] + cmd[1:]
    subprocess.run(cmd, check=True)
    print(f"{out_dir}: converted ({quantization or 'float32'})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out", default=os.path.join(root, "bench", "models", "t5-small-random"))
    args = ap.parse_args()
    if os.path.exists(os.path.join(args.out, "config.json")):
        print(f"{args.out}: already there")
    else:
        torch.manual_seed(0)
        # The defaults are t5-small's hyperparameters; t5-small's config.json also names the
        # decoder's start token (pad), which transformers 5's T5Config no longer defaults.
        cfg = T5Config(decoder_start_token_id=0, architectures=["T5ForConditionalGeneration"])
        model = T5ForConditionalGeneration(cfg).eval()
        model.save_pretrained(args.out)
        make_tokenizer(cfg.vocab_size).save_pretrained(args.out)
        n = sum(p.numel() for p in model.parameters())
        print(f"{args.out}: {n / 1e6:.1f} M parameters")
    convert(args.out, args.out + "-ct2", None)
    convert(args.out, args.out + "-ct2-int8", "int8")


if __name__ == "__main__":
    main()
