#!/usr/bin/env python3
"""Golden-test fixture generator: tiny random BERT checkpoints and their HF `transformers` outputs.

Owns the tests/fixtures/bert-*/ directories. Each fixture is a tiny BERT (or BERT head) built
from a config with fixed-seed random weights (every parameter re-filled, LayerNorm and biases
included, so init defaults cannot hide bugs), saved exactly as `save_pretrained` writes it, plus
a fixed padded batch of inputs, the model's eval-mode outputs (eager attention, no grad) and a
meta.json with versions, seed, command line and tolerance notes. Dev-time only; runs offline.

Usage: python3 tools/make_fixtures.py [--only NAME] [--out tests/fixtures] [--check]
"""

import argparse
import inspect
import json
import os
import platform
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import safetensors  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)

SEED = 1234
BATCH = 3
SEQ = 12
# Real lengths per row: one fully used, one mid, one short (right padding with pad id 0).
LENGTHS = (12, 7, 4)
# First token-type-1 position per row (segment B starts there); rows keep pads at type 0.
SEGMENT_B = (7, 4, 2)

F32_NOTES = (
    "F32 on CPU, eager attention. Expect agreement to about 1e-5 absolute / 1e-4 relative; "
    "a correct F32 implementation should pass atol=1e-4, rtol=1e-4. Padded positions "
    "(attention_mask 0) are computed by HF too (they attend to the real keys) and are included "
    "in the stored tensors; compare them or mask them, both are well defined."
)
BF16_NOTES = (
    "Weights stored in BF16; outputs computed by transformers with dtype=torch.bfloat16 (every "
    "op in BF16 as PyTorch CPU does it) and stored as F32 (exact widening of the BF16 values). "
    "BF16 has an 8-bit mantissa, and implementations may accumulate in F32: compare with "
    "atol=5e-2, rtol=5e-2 (or against the F32 bert-tiny outputs with the same tolerance; "
    "the measured max |bf16 - f32| over all outputs of this fixture is about 0.036)."
)

BASE = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    hidden_act="gelu",
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
    max_position_embeddings=64,
    type_vocab_size=2,
    initializer_range=0.02,
    layer_norm_eps=1e-12,
    pad_token_id=0,
)


def spec(cls, overrides=None, hidden_states=False, dtype=torch.float32, model_kwargs=None,
         notes=None, prune=None):
    cfg = dict(BASE)
    cfg.update(overrides or {})
    return dict(cls=cls, config=cfg, hidden_states=hidden_states, dtype=dtype,
                model_kwargs=model_kwargs or {}, notes=notes, prune=prune)


HEAD_NOTE = ("last_hidden_state is the encoder's sequence output (hidden_states[-1] of the head "
             "model), stored to debug head mismatches")
MLM_NOTE = (HEAD_NOTE + "; cls.predictions.decoder.weight is tied to "
            "bert.embeddings.word_embeddings.weight and cls.predictions.decoder.bias to "
            "cls.predictions.bias: neither decoder tensor is stored in model.safetensors")


FIXTURES = {
    "bert-tiny": spec(BertModel, hidden_states=True),
    "bert-tiny-gelu-new": spec(BertModel, {"hidden_act": "gelu_new"}),
    "bert-tiny-relu": spec(BertModel, {"hidden_act": "relu", "hidden_size": 48,
                                       "num_attention_heads": 6}),
    "bert-tiny-nopool": spec(BertModel, model_kwargs={"add_pooling_layer": False},
                             notes="saved without pooler.*; load with add_pooling_layer=False"),
    "bert-tiny-mlm": spec(BertForMaskedLM, {"vocab_size": 128}, notes=MLM_NOTE),
    "bert-tiny-seqcls": spec(BertForSequenceClassification, {"num_labels": 3},
                             notes=HEAD_NOTE + "; logits come from the pooler output"),
    "bert-tiny-tokcls": spec(BertForTokenClassification, {"num_labels": 5}, notes=HEAD_NOTE),
    "bert-tiny-qa": spec(BertForQuestionAnswering, notes=HEAD_NOTE),
    "bert-tiny-bf16": spec(BertModel, hidden_states=True, dtype=torch.bfloat16),
    # bert-tiny's very weights, then transformers' own prune_heads: config.pruned_heads
    # records it, so the checkpoint loads back pruned; ptm pruning bert-tiny must match too.
    "bert-tiny-pruned": spec(BertModel, prune={0: [0, 2], 1: [3]},
                             notes="bert-tiny pruned with model.prune_heads({0: [0, 2], 1: [3]})"),
}


def make_inputs(vocab_size):
    """The fixed batch: ids in [1, vocab) with a CLS-like 2 first, pads 0, two segments."""
    gen = torch.Generator().manual_seed(SEED + 1)
    ids = torch.randint(3, vocab_size, (BATCH, SEQ), generator=gen, dtype=torch.int64)
    mask = torch.zeros(BATCH, SEQ, dtype=torch.int64)
    types = torch.zeros(BATCH, SEQ, dtype=torch.int64)
    for row, (n, b) in enumerate(zip(LENGTHS, SEGMENT_B)):
        ids[row, 0] = 2
        ids[row, n:] = 0
        mask[row, :n] = 1
        types[row, b:n] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def randomize_(model):
    """Re-fill every parameter under the seed: N(0, 0.2), LayerNorm weights N(1, 0.2)."""
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied parameters appear once
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32) * 0.2
            if "LayerNorm.weight" in name:
                noise += 1.0
            p.copy_(noise.to(p.dtype))


def build_model(fx):
    torch.manual_seed(SEED)
    config = BertConfig(**fx["config"])
    config._attn_implementation = "eager"
    model = fx["cls"](config, **fx["model_kwargs"])
    randomize_(model)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    if fx["prune"]:
        prune_heads_(model, fx["prune"])
    model.eval()
    return model


def prune_heads_(model, heads_by_layer):
    """transformers 4.x BertSelfAttention.prune_heads, which 5.x removed: drop the heads'
    rows of Q, K, V and columns of the output projection, and record config.pruned_heads."""
    from transformers.pytorch_utils import prune_linear_layer
    for layer, heads in heads_by_layer.items():
        attn = model.encoder.layer[layer].attention
        head_dim = attn.self.attention_head_size
        n_heads = model.config.num_attention_heads
        keep = [h for h in range(n_heads) if h not in heads]
        index = torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in keep])
        attn.self.query = prune_linear_layer(attn.self.query, index)
        attn.self.key = prune_linear_layer(attn.self.key, index)
        attn.self.value = prune_linear_layer(attn.self.value, index)
        attn.output.dense = prune_linear_layer(attn.output.dense, index, dim=1)
        for name in ("num_attention_heads", "all_head_size"):
            if hasattr(attn.self, name):
                setattr(attn.self, name, len(keep) * (1 if name == "num_attention_heads"
                                                      else head_dim))
    model.config.pruned_heads = {int(k): sorted(v) for k, v in heads_by_layer.items()}


def save_checkpoint(model, directory):
    kwargs = {}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        kwargs["safe_serialization"] = True
    model.save_pretrained(directory, **kwargs)


def load_model(fx, directory):
    kwargs = dict(attn_implementation="eager")
    params = inspect.signature(fx["cls"].from_pretrained).parameters
    key = "torch_dtype" if "torch_dtype" in params and "dtype" not in params else "dtype"
    kwargs[key] = fx["dtype"]
    kwargs.update(fx["model_kwargs"])
    model = fx["cls"].from_pretrained(directory, **kwargs)
    model.eval()
    return model


def run_model(model, inputs, want_hidden_states):
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True, return_dict=True)
    result = {}
    for key in ("last_hidden_state", "pooler_output", "logits", "start_logits", "end_logits"):
        val = out.get(key) if hasattr(out, "get") else getattr(out, key, None)
        if val is not None:
            result[key] = val
    hidden = out.hidden_states
    if "last_hidden_state" not in result:
        result["last_hidden_state"] = hidden[-1]  # heads: the encoder's sequence output
    if want_hidden_states:
        for i, h in enumerate(hidden):
            result[f"hidden_states.{i}"] = h
    return {k: v.detach().to(torch.float32).clone().contiguous() for k, v in result.items()}


def write_meta(directory, name, fx, outputs):
    meta = {
        "fixture": name,
        "generator": "tools/make_fixtures.py",
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "safetensors": safetensors.__version__,
        },
        "seed": SEED,
        "model_class": fx["cls"].__name__,
        "model_kwargs": fx["model_kwargs"],
        "checkpoint_dtype": str(fx["dtype"]).replace("torch.", ""),
        "attn_implementation": "eager",
        "mode": "eval, torch.no_grad(), CPU",
        "weights": "every parameter re-filled with N(0,0.2); LayerNorm weights N(1,0.2)",
        "inputs": {
            "batch": BATCH, "seq_len": SEQ, "lengths": list(LENGTHS),
            "segment_b_start": list(SEGMENT_B), "pad_token_id": 0, "padding_side": "right",
        },
        "outputs": {k: list(v.shape) for k, v in sorted(outputs.items())},
        "outputs_dtype": "float32",
        "tolerance": BF16_NOTES if fx["dtype"] == torch.bfloat16 else F32_NOTES,
    }
    if fx["notes"]:
        meta["notes"] = fx["notes"]
    if "hidden_states.0" in outputs:
        meta["hidden_states_note"] = (
            "hidden_states.0 is the embedding output; hidden_states.i the output of layer i")
    with open(directory / "meta.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")


def make_fixture(name, fx, out_dir):
    directory = out_dir / name
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    model = build_model(fx)
    if fx["dtype"] != torch.float32:
        model = model.to(fx["dtype"])
    save_checkpoint(model, directory)
    # Outputs come from the checkpoint as transformers reloads it, so the fixture is exactly
    # what from_pretrained(dir) computes. transformers 5 cannot reload a pruned checkpoint
    # (it dropped pruned_heads), so a pruned fixture's outputs come from the pruned model.
    if not fx["prune"]:
        model = load_model(fx, directory)
    inputs = make_inputs(fx["config"]["vocab_size"])
    outputs = run_model(model, inputs, fx["hidden_states"])
    save_file(inputs, str(directory / "inputs.safetensors"))
    save_file(outputs, str(directory / "outputs.safetensors"))
    write_meta(directory, name, fx, outputs)
    for path in directory.iterdir():
        path.chmod(0o644)  # safetensors writes 0600
    return directory


def check_fixture(name, fx, out_dir):
    """Reload the checkpoint with from_pretrained and compare against the stored outputs."""
    directory = out_dir / name
    # A pruned checkpoint cannot be reloaded by transformers 5: rebuild it in memory.
    model = build_model(fx) if fx["prune"] else load_model(fx, directory)
    inputs = load_file(str(directory / "inputs.safetensors"))
    stored = load_file(str(directory / "outputs.safetensors"))
    fresh = run_model(model, inputs, fx["hidden_states"])
    ok = set(fresh) == set(stored)
    worst = 0.0
    for key, val in stored.items():
        if key in fresh:
            worst = max(worst, (fresh[key] - val).abs().max().item())
    ok = ok and worst == 0.0
    weights = load_file(str(directory / "model.safetensors"))
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in weights.values()})
    size = sum(p.stat().st_size for p in directory.iterdir())
    print(f"{'ok  ' if ok else 'FAIL'} {name:20s} {size:8d} bytes  weights={dtypes} "
          f"tensors={len(weights)} max|diff|={worst:.3g} outputs={sorted(stored)}")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(FIXTURES),
                        help="make just this fixture (repeatable)")
    parser.add_argument("--out", default="tests/fixtures", help="fixtures root directory")
    parser.add_argument("--check", action="store_true",
                        help="only reload existing fixtures and verify their outputs")
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    out_dir = Path(args.out)
    names = args.only or list(FIXTURES)
    ok = True
    for name in names:
        if not args.check:
            make_fixture(name, FIXTURES[name], out_dir)
        ok = check_fixture(name, FIXTURES[name], out_dir) and ok
    total = sum(p.stat().st_size for n in names for p in (out_dir / n).iterdir())
    print(f"total {total} bytes in {len(names)} fixtures")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
