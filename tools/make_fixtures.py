#!/usr/bin/env python3
"""Golden-test fixture generator: tiny random BERT, LLaMA and T5 checkpoints, their HF outputs.

Owns the tests/fixtures/bert-*/, llama-*/ and t5-*/ directories (LLaMA, T5: see their sections
below). Each fixture is a tiny BERT (or BERT head) built
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


# ---------------------------------------------------------------------------------------------
# LLaMA fixtures (tests/fixtures/llama-*/): tiny random LlamaForCausalLM / LlamaModel /
# LlamaForSequenceClassification checkpoints covering GQA group sizes, head_dim != hidden/heads,
# tied and untied heads, biases, and every rope_scaling type; their logits on a left-padded
# batch, greedy generate() output for left-padded prompts, and HF's logits processors applied
# to fixed score vectors (llama-processors/).

LLAMA_BASE = dict(
    vocab_size=100,
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=64,
    rms_norm_eps=1e-6,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
    tie_word_embeddings=False,
)
LLAMA_LENGTHS = (12, 7, 4)       # logits batch, left padded to 12
LLAMA_PROMPT_LENGTHS = (8, 5, 3)  # generate() prompts, left padded to 8
LLAMA_NEW_TOKENS = 20

LLAMA_F32_NOTES = (
    "F32 on CPU, eager attention. Logits agree to about 1e-5; compare with atol=1e-4 at the "
    "positions whose attention_mask is 1. Left-padded positions attend to no key at all, where "
    "HF's additive mask gives a uniform average and a fused kernel may give zeros: ignore them. "
    "generate.safetensors holds model.generate(do_sample=False) on left-padded prompts: "
    "position_ids from the attention mask (cumsum - 1), finished rows padded with pad_token_id.")


def llama_spec(cls_name, overrides=None, legacy_rope=None, notes=None, save_dtype=None):
    cfg = dict(LLAMA_BASE)
    cfg.update(overrides or {})
    return dict(cls_name=cls_name, config=cfg, legacy_rope=legacy_rope, notes=notes,
                save_dtype=save_dtype)


LLAMA_FIXTURES = {
    "llama-tiny": llama_spec("LlamaForCausalLM"),
    "llama-tiny-gqa2": llama_spec("LlamaForCausalLM", {"num_key_value_heads": 2,
                                                       "tie_word_embeddings": True}),
    # Two eos ids, one of which greedy search reaches early: that row then gets pad ids.
    "llama-tiny-mqa": llama_spec("LlamaForCausalLM", {"num_key_value_heads": 1,
                                                      "eos_token_id": [2, 93]}),
    "llama-tiny-headdim": llama_spec("LlamaForCausalLM", {"num_key_value_heads": 2,
                                                          "head_dim": 12}),
    "llama-tiny-bias": llama_spec("LlamaForCausalLM", {"attention_bias": True,
                                                       "mlp_bias": True}),
    # Written as transformers 4.x did: top-level rope_theta + rope_scaling with "type".
    "llama-tiny-rope-linear": llama_spec(
        "LlamaForCausalLM", {"rope_parameters": {"rope_type": "linear", "factor": 2.0,
                                                 "rope_theta": 500000.0}},
        legacy_rope={"rope_theta": 500000.0, "rope_scaling": {"type": "linear", "factor": 2.0}}),
    # max_position_embeddings 8: the logits batch (12) and generation pass it, so the NTK
    # base is recomputed per call as HF's dynamic_rope_update does.
    "llama-tiny-rope-dynamic": llama_spec(
        "LlamaForCausalLM", {"max_position_embeddings": 8,
                             "rope_parameters": {"rope_type": "dynamic", "factor": 2.0,
                                                 "rope_theta": 10000.0}}),
    "llama-tiny-rope-yarn": llama_spec(
        "LlamaForCausalLM", {"head_dim": 16,
                             "rope_parameters": {"rope_type": "yarn", "factor": 4.0,
                                                 "original_max_position_embeddings": 16,
                                                 "rope_theta": 10000.0}}),
    "llama-tiny-rope-llama3": llama_spec(
        "LlamaForCausalLM", {"head_dim": 16,
                             "rope_parameters": {"rope_type": "llama3", "factor": 8.0,
                                                 "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                 "original_max_position_embeddings": 64,
                                                 "rope_theta": 10000.0}}),
    # BF16 weights on disk; the outputs are transformers' with those weights widened to F32
    # (from_pretrained(dtype=float32)), which is what ptm computes: F32 activations, BF16
    # weights widened per tile. So F32 tolerances apply.
    "llama-tiny-bf16": llama_spec("LlamaForCausalLM", {"num_key_value_heads": 2},
                                  save_dtype=torch.bfloat16),
    "llama-tiny-base": llama_spec("LlamaModel", {"num_key_value_heads": 2}),
    "llama-tiny-seqcls": llama_spec("LlamaForSequenceClassification", {"num_labels": 3,
                                                                       "num_key_value_heads": 2}),
}
LLAMA_PROCESSORS = "llama-processors"


def llama_class(name):
    return getattr(transformers, name)


def llama_left_padded(lengths, seq, vocab, seed):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (len(lengths), seq), generator=gen, dtype=torch.int64)
    mask = torch.zeros(len(lengths), seq, dtype=torch.int64)
    for row, n in enumerate(lengths):
        ids[row, : seq - n] = LLAMA_BASE["pad_token_id"]
        mask[row, seq - n:] = 1
    return ids, mask


def llama_randomize_(model):
    """Every parameter N(0, 0.2) under the seed; RMSNorm weights N(1, 0.2)."""
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied parameters appear once
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32) * 0.2
            if "norm.weight" in name or "layernorm.weight" in name:
                noise += 1.0
            p.copy_(noise)


def llama_load(fx, directory):
    model = llama_class(fx["cls_name"]).from_pretrained(directory, attn_implementation="eager",
                                                        dtype=torch.float32)
    model.eval()
    return model


def llama_outputs(fx, directory):
    """Logits (or the base model's last_hidden_state) and, for causal LMs, greedy tokens.
    Each from a freshly loaded model: dynamic RoPE keeps state across calls in HF."""
    vocab = fx["config"]["vocab_size"]
    ids, mask = llama_left_padded(LLAMA_LENGTHS, max(LLAMA_LENGTHS), vocab, SEED + 1)
    inputs = {"input_ids": ids, "attention_mask": mask}
    base = fx["cls_name"] == "LlamaModel"
    with torch.no_grad():
        out = llama_load(fx, directory)(**inputs, output_hidden_states=base, return_dict=True)
    key = "last_hidden_state" if base else "logits"
    outputs = {key: getattr(out, key).detach().float().contiguous()}
    for i, h in enumerate(out.hidden_states if base else ()):
        # transformers 5: the embeddings, each layer's output but the last, the normed output
        outputs[f"hidden_states.{i}"] = h.detach().float().clone().contiguous()
    gen = {}
    if fx["cls_name"] == "LlamaForCausalLM":
        p_ids, p_mask = llama_left_padded(LLAMA_PROMPT_LENGTHS, max(LLAMA_PROMPT_LENGTHS), vocab,
                                          SEED + 2)
        with torch.no_grad():
            seqs = llama_load(fx, directory).generate(
                input_ids=p_ids, attention_mask=p_mask, max_new_tokens=LLAMA_NEW_TOKENS,
                do_sample=False)
        gen = {"prompt_ids": p_ids, "prompt_mask": p_mask, "sequences": seqs.contiguous()}
    return inputs, outputs, gen


def llama_meta(directory, name, fx, outputs, gen):
    meta = {
        "fixture": name,
        "generator": "tools/make_fixtures.py",
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__,
                     "safetensors": safetensors.__version__},
        "seed": SEED,
        "model_class": fx["cls_name"],
        "attn_implementation": "eager",
        "weights": "every parameter re-filled with N(0,0.2); RMSNorm weights N(1,0.2)",
        "inputs": {"lengths": list(LLAMA_LENGTHS), "padding_side": "left", "pad_token_id": 0},
        "outputs": {k: list(v.shape) for k, v in sorted(outputs.items())},
        "tolerance": LLAMA_F32_NOTES,
    }
    if gen:
        meta["generate"] = {"prompt_lengths": list(LLAMA_PROMPT_LENGTHS),
                            "max_new_tokens": LLAMA_NEW_TOKENS, "do_sample": False,
                            "sequences": list(gen["sequences"].shape)}
    if fx["save_dtype"] is not None:
        meta["checkpoint_dtype"] = str(fx["save_dtype"]).replace("torch.", "")
        meta["notes"] = ("outputs from the checkpoint loaded with dtype=float32: the BF16 "
                         "weights widened exactly, activations in F32")
    if fx["legacy_rope"]:
        meta["notes"] = ("config.json rewritten in the transformers 4.x form (top-level "
                         "rope_theta, rope_scaling with \"type\") to test the legacy keys")
    with open(directory / "meta.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")


def make_llama_fixture(name, fx, out_dir):
    directory = out_dir / name
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    torch.manual_seed(SEED)
    config = transformers.LlamaConfig(**fx["config"])
    model = llama_class(fx["cls_name"])(config)
    llama_randomize_(model)
    model.eval()
    if fx["save_dtype"] is not None:
        model = model.to(fx["save_dtype"])
    model.save_pretrained(directory)
    if fx["legacy_rope"]:
        path = directory / "config.json"
        cfg = json.loads(path.read_text())
        cfg.pop("rope_parameters", None)
        cfg.update(fx["legacy_rope"])
        path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    inputs, outputs, gen = llama_outputs(fx, directory)
    save_file(inputs, str(directory / "inputs.safetensors"))
    save_file(outputs, str(directory / "outputs.safetensors"))
    if gen:
        save_file(gen, str(directory / "generate.safetensors"))
    llama_meta(directory, name, fx, outputs, gen)
    for path in directory.iterdir():
        path.chmod(0o644)


def check_llama_fixture(name, fx, out_dir):
    directory = out_dir / name
    _, outputs, gen = llama_outputs(fx, directory)
    stored = load_file(str(directory / "outputs.safetensors"))
    worst = max((outputs[k] - v).abs().max().item() for k, v in stored.items())
    ok = set(outputs) == set(stored) and worst == 0.0
    if gen:
        old = load_file(str(directory / "generate.safetensors"))
        ok = ok and torch.equal(old["sequences"], gen["sequences"])
    size = sum(p.stat().st_size for p in directory.iterdir())
    print(f"{'ok  ' if ok else 'FAIL'} {name:24s} {size:8d} bytes  max|diff|={worst:.3g} "
          f"generate={'yes' if gen else 'no'}")
    return ok


# The processors' parameters; test_generate.c sets the same values.
LLAMA_PROC_CASES = {
    "repetition_penalty": dict(repetition_penalty=1.3),
    "temperature": dict(temperature=0.7),
    "top_k": dict(top_k=5),
    "top_p": dict(top_p=0.8),
    "min_p": dict(min_p=0.1),
    "chain": dict(repetition_penalty=1.3, temperature=0.7, top_k=10, top_p=0.9, min_p=0.05),
}


def llama_processors(scores, ids):
    """HF's own processors, built by GenerationMixin._get_logits_processor in HF's order."""
    from transformers.generation.logits_process import (
        LogitsProcessorList, MinPLogitsWarper, RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)
    out = {}
    for case, opts in LLAMA_PROC_CASES.items():
        procs = LogitsProcessorList()
        if "repetition_penalty" in opts:
            procs.append(RepetitionPenaltyLogitsProcessor(opts["repetition_penalty"]))
        if "temperature" in opts:
            procs.append(TemperatureLogitsWarper(opts["temperature"]))
        if "top_k" in opts:
            procs.append(TopKLogitsWarper(opts["top_k"]))
        if "top_p" in opts:
            procs.append(TopPLogitsWarper(opts["top_p"]))
        if "min_p" in opts:
            procs.append(MinPLogitsWarper(opts["min_p"]))
        out[case] = procs(ids, scores.clone()).contiguous()
    return out


def make_llama_processors(out_dir, check):
    directory = out_dir / LLAMA_PROCESSORS
    gen = torch.Generator().manual_seed(SEED + 3)
    scores = torch.randn(4, LLAMA_BASE["vocab_size"], generator=gen) * 3.0
    ids = torch.randint(0, LLAMA_BASE["vocab_size"], (4, 10), generator=gen)
    out = llama_processors(scores, ids)
    path = directory / "processors.safetensors"
    if check:
        old = load_file(str(path))
        ok = all(torch.equal(old[k], v) for k, v in out.items())
        print(f"{'ok  ' if ok else 'FAIL'} {LLAMA_PROCESSORS}")
        return ok
    directory.mkdir(parents=True, exist_ok=True)
    save_file({"scores": scores, "ids": ids, **out}, str(path))
    with open(directory / "meta.json", "w", encoding="utf-8") as f:
        json.dump({"generator": "tools/make_fixtures.py", "cases": LLAMA_PROC_CASES,
                   "order": "repetition_penalty, temperature, top_k, top_p, min_p "
                            "(GenerationMixin._get_logits_processor)",
                   "filter_value": "-inf",
                   "versions": {"torch": torch.__version__,
                                "transformers": transformers.__version__}},
                  f, indent=2, sort_keys=True)
        f.write("\n")
    path.chmod(0o644)
    return True


# ---------------------------------------------------------------------------------------------
# T5 fixtures (tests/fixtures/t5-*/): tiny random T5ForConditionalGeneration checkpoints in the
# v1.0 style (relu feed-forward, lm_head tied to shared, decoder output scaled by d_model^-0.5)
# and the v1.1 style (gated-gelu, untied lm_head stored in the checkpoint, no rescale), and a
# T5EncoderModel; their outputs on a right-padded batch with decoder_input_ids, the decoder's
# last_hidden_state as T5Model computes it from the same checkpoint, and greedy generate().

T5_BASE = dict(
    vocab_size=100,
    d_model=32,
    d_kv=8,
    d_ff=37,
    num_layers=2,
    num_heads=4,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=16,
    layer_norm_epsilon=1e-6,
    feed_forward_proj="relu",
    pad_token_id=0,
    eos_token_id=1,
    decoder_start_token_id=0,
)
T5_LENGTHS = (12, 7, 4)  # encoder batch, right padded to 12 (long enough for log buckets)
T5_DECODER_LEN = 6       # decoder_input_ids: start token 0, then random ids
T5_NEW_TOKENS = 24

T5_F32_NOTES = (
    "F32 on CPU, eager attention. Agreement to about 1e-5; compare with atol=1e-4. Encoder "
    "positions whose attention_mask is 0 are computed by HF too (they attend to the real keys) "
    "and are stored. generate.safetensors holds model.generate(do_sample=False): sequences "
    "start with decoder_start_token_id; finished rows are padded with pad_token_id.")


def t5_spec(cls_name, overrides=None, untied=False, legacy=False, notes=None):
    cfg = dict(T5_BASE)
    cfg.update(overrides or {})
    return dict(cls_name=cls_name, config=cfg, untied=untied, legacy=legacy, notes=notes)


T5_FIXTURES = {
    # config.json without scale_decoder_outputs, as transformers 4.x wrote it: the rescale
    # follows tie_word_embeddings.
    "t5-tiny": t5_spec("T5ForConditionalGeneration", legacy=True,
                       notes="T5 v1.0 style: relu, lm_head tied to shared.weight (not stored); "
                             "config.json without scale_decoder_outputs (4.x form)"),
    # Written as a v1.1 checkpoint is on the Hub: tie_word_embeddings false in config.json and
    # lm_head.weight stored (transformers 5 then loads the head untied, without the rescale).
    "t5-tiny-v1_1": t5_spec("T5ForConditionalGeneration",
                            {"feed_forward_proj": "gated-gelu", "num_heads": 2, "d_kv": 12},
                            untied=True,
                            notes="T5 v1.1 style: gated-gelu, untied lm_head, "
                                  "tie_word_embeddings false"),
    # What transformers 5 saves for tie_word_embeddings=False: lm_head tied to shared after all,
    # tie_word_embeddings true and scale_decoder_outputs false in config.json.
    "t5-tiny-hf5-noscale": t5_spec("T5ForConditionalGeneration",
                                   {"feed_forward_proj": "gated-gelu",
                                    "tie_word_embeddings": False},
                                   notes="saved by transformers 5 from tie_word_embeddings=False: "
                                         "tied lm_head without the rescale"),
    "t5-tiny-encoder": t5_spec("T5EncoderModel", {"feed_forward_proj": "gated-silu"},
                               notes="T5EncoderModel, gated-silu feed-forward"),
}


def t5_inputs(vocab):
    gen = torch.Generator().manual_seed(SEED + 4)
    seq = max(T5_LENGTHS)
    ids = torch.randint(2, vocab, (len(T5_LENGTHS), seq), generator=gen, dtype=torch.int64)
    mask = torch.zeros(len(T5_LENGTHS), seq, dtype=torch.int64)
    for row, n in enumerate(T5_LENGTHS):
        ids[row, n - 1] = T5_BASE["eos_token_id"]
        ids[row, n:] = T5_BASE["pad_token_id"]
        mask[row, :n] = 1
    dec = torch.randint(2, vocab, (len(T5_LENGTHS), T5_DECODER_LEN), generator=gen,
                        dtype=torch.int64)
    dec[:, 0] = T5_BASE["decoder_start_token_id"]
    return {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": dec}


def t5_randomize_(model, gen):
    """Every parameter N(0, 0.2) under the seed; T5LayerNorm weights N(1, 0.2)."""
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied parameters appear once
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32) * 0.2
            if "layer_norm.weight" in name:
                noise += 1.0
            p.copy_(noise)


def t5_load(cls_name, directory):
    model = getattr(transformers, cls_name).from_pretrained(
        directory, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    return model


def t5_outputs(fx, directory):
    inputs = t5_inputs(fx["config"]["vocab_size"])
    enc_only = fx["cls_name"] == "T5EncoderModel"
    model = t5_load(fx["cls_name"], directory)
    if enc_only:
        inputs.pop("decoder_input_ids")
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True, return_dict=True)
    keys = ("last_hidden_state",) if enc_only else ("logits", "encoder_last_hidden_state")
    outputs = {k: getattr(out, k).detach().float().contiguous() for k in keys}
    # T5Stack's states: the embeddings, each block's output but the last, the normed output.
    stacks = ("hidden_states",) if enc_only else ("encoder_hidden_states", "decoder_hidden_states")
    for stack in stacks:
        for i, h in enumerate(getattr(out, stack)):
            outputs[f"{stack}.{i}"] = h.detach().float().clone().contiguous()
    gen = {}
    if not enc_only:
        with torch.no_grad():
            base = t5_load("T5Model", directory)(**inputs, return_dict=True)
            outputs["decoder_last_hidden_state"] = base.last_hidden_state.detach().contiguous()
            seqs = model.generate(input_ids=inputs["input_ids"],
                                  attention_mask=inputs["attention_mask"],
                                  max_new_tokens=T5_NEW_TOKENS, do_sample=False, num_beams=1)
        gen = {"sequences": seqs.contiguous()}
    return inputs, outputs, gen


def t5_meta(directory, name, fx, outputs, gen):
    meta = {
        "fixture": name,
        "generator": "tools/make_fixtures.py",
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__,
                     "safetensors": safetensors.__version__},
        "seed": SEED,
        "model_class": fx["cls_name"],
        "attn_implementation": "eager",
        "weights": "every parameter re-filled with N(0,0.2); T5LayerNorm weights N(1,0.2)",
        "inputs": {"lengths": list(T5_LENGTHS), "padding_side": "right", "pad_token_id": 0,
                   "decoder_input_ids": "decoder_start_token_id then random ids"},
        "outputs": {k: list(v.shape) for k, v in sorted(outputs.items())},
        "outputs_note": "decoder_last_hidden_state is T5Model(...).last_hidden_state "
                        "from the same checkpoint",
        "tolerance": T5_F32_NOTES,
        "notes": fx["notes"],
    }
    if gen:
        meta["generate"] = {"input": "input_ids and attention_mask of inputs.safetensors",
                            "max_new_tokens": T5_NEW_TOKENS, "do_sample": False,
                            "num_beams": 1, "sequences": list(gen["sequences"].shape)}
    with open(directory / "meta.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")


def t5_legacy_config_(directory):
    """Drop scale_decoder_outputs from config.json, as transformers 4.x configs lack it."""
    path = directory / "config.json"
    cfg = json.loads(path.read_text())
    cfg.pop("scale_decoder_outputs", None)
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def t5_untie_(directory, vocab, d_model, gen):
    """Rewrite the checkpoint as a v1.1 one: lm_head.weight stored, tie_word_embeddings false."""
    weights = load_file(str(directory / "model.safetensors"))
    weights["lm_head.weight"] = torch.randn(vocab, d_model, generator=gen) * 0.2
    save_file(dict(sorted(weights.items())), str(directory / "model.safetensors"),
              metadata={"format": "pt"})
    path = directory / "config.json"
    cfg = json.loads(path.read_text())
    cfg["tie_word_embeddings"] = False
    cfg.pop("scale_decoder_outputs", None)
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def make_t5_fixture(name, fx, out_dir):
    directory = out_dir / name
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    model = getattr(transformers, fx["cls_name"])(transformers.T5Config(**fx["config"]))
    t5_randomize_(model, gen)
    model.eval()
    model.save_pretrained(directory)
    if fx["untied"]:
        t5_untie_(directory, fx["config"]["vocab_size"], fx["config"]["d_model"], gen)
        reloaded = t5_load(fx["cls_name"], directory)
        assert reloaded.lm_head.weight.data_ptr() != reloaded.shared.weight.data_ptr()
    if fx["legacy"]:
        t5_legacy_config_(directory)
    inputs, outputs, gen_out = t5_outputs(fx, directory)
    save_file(inputs, str(directory / "inputs.safetensors"))
    save_file(outputs, str(directory / "outputs.safetensors"))
    if gen_out:
        save_file(gen_out, str(directory / "generate.safetensors"))
    t5_meta(directory, name, fx, outputs, gen_out)
    for path in directory.iterdir():
        path.chmod(0o644)


def check_t5_fixture(name, fx, out_dir):
    directory = out_dir / name
    _, outputs, gen = t5_outputs(fx, directory)
    stored = load_file(str(directory / "outputs.safetensors"))
    worst = max((outputs[k] - v).abs().max().item() for k, v in stored.items())
    ok = set(outputs) == set(stored) and worst == 0.0
    if gen:
        old = load_file(str(directory / "generate.safetensors"))
        ok = ok and torch.equal(old["sequences"], gen["sequences"])
    size = sum(p.stat().st_size for p in directory.iterdir())
    print(f"{'ok  ' if ok else 'FAIL'} {name:24s} {size:8d} bytes  max|diff|={worst:.3g} "
          f"generate={'yes' if gen else 'no'}")
    return ok


# ---------------------------------------------------------------------------------------------
# Beam search (tests/fixtures/<fixture>/beam.safetensors + beam.json, written by --only beam
# without touching the fixture's other files): transformers' generate() with num_beams 4 (and
# a greedy case with the n-gram and repetition processors) on the T5 v1.0 / v1.1 checkpoints
# and two LLaMA ones (one eos id; two eos ids, so 3 * num_beams candidates per step), for
# several settings. Each case is also run in float64: a case whose tokens change is decided by
# a near-tie that no float32 implementation can be expected to reproduce, and is refused.

BEAM = "beam"
BEAM_FIXTURES = ("t5-tiny", "t5-tiny-v1_1", "llama-tiny", "llama-tiny-mqa")
BEAM_NEW_TOKENS = 32
# Case name -> generate() options; test_generate.c's beam cases set the same values.
BEAM_CASES = {
    "beam4": dict(num_beams=4),
    "lp2_early": dict(num_beams=4, length_penalty=2.0, early_stopping=True),
    "lpneg_never": dict(num_beams=4, length_penalty=-0.5, early_stopping="never"),
    "never_ret2": dict(num_beams=4, early_stopping="never", num_return_sequences=2),
    "ngram2_ret3": dict(num_beams=4, no_repeat_ngram_size=2, num_return_sequences=3),
    "ngram3_lp05_ret4": dict(num_beams=4, no_repeat_ngram_size=3, length_penalty=0.5,
                             num_return_sequences=4),
    "rep13": dict(num_beams=4, repetition_penalty=1.3),
    "greedy_ngram2_rep13": dict(num_beams=1, no_repeat_ngram_size=2, repetition_penalty=1.3),
}


def beam_inputs(name, directory):
    """The prompts: T5's right-padded encoder batch, LLaMA's left-padded generate() prompts."""
    if name.startswith("t5"):
        inp = load_file(str(directory / "inputs.safetensors"))
        return inp["input_ids"], inp["attention_mask"]
    gen = load_file(str(directory / "generate.safetensors"))
    return gen["prompt_ids"], gen["prompt_mask"]


def beam_generate(cls, directory, dtype, ids, mask, opts):
    # A fresh model per call, as llama_outputs does (nothing may carry over).
    model = getattr(transformers, cls).from_pretrained(directory, attn_implementation="eager",
                                                       dtype=dtype)
    model.eval()
    with torch.no_grad():
        return model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=BEAM_NEW_TOKENS,
                              do_sample=False, **opts).contiguous()


def beam_run(name, directory):
    cls = "T5ForConditionalGeneration" if name.startswith("t5") else "LlamaForCausalLM"
    ids, mask = beam_inputs(name, directory)
    out = {"input_ids": ids, "attention_mask": mask}
    near_ties = []
    for case, opts in BEAM_CASES.items():
        seqs = beam_generate(cls, directory, torch.float32, ids, mask, opts)
        out[f"{case}.sequences"] = seqs
        if name.startswith("t5"):
            wide = beam_generate(cls, directory, torch.float64, ids, mask, opts)
            same = torch.equal(seqs, wide)
        else:
            # transformers' float64 eager mask turns left-padded rows into NaN, so each prompt
            # runs alone, unpadded (a row's beams never depend on the other rows); its new tokens
            # must begin the batch's.
            same = True
            per = seqs.shape[0] // ids.shape[0]
            for row in range(ids.shape[0]):
                keep = mask[row].bool()
                one = beam_generate(cls, directory, torch.float64, ids[row:row + 1, keep],
                                    mask[row:row + 1, keep], opts)
                gen = one[:, int(keep.sum()):]
                got = seqs[row * per:(row + 1) * per, ids.shape[1]:ids.shape[1] + gen.shape[1]]
                same = same and torch.equal(got, gen)
        if not same:
            near_ties.append(case)
    return out, near_ties


def beam_fixture(name, out_dir, check):
    directory = out_dir / name
    out, near_ties = beam_run(name, directory)
    path = directory / "beam.safetensors"
    if check:
        old = load_file(str(path))
        ok = set(old) == set(out) and all(torch.equal(old[k], v) for k, v in out.items())
    else:
        save_file(out, str(path))
        meta = {
            "generator": "tools/make_fixtures.py --only beam",
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            "call": "model.generate(input_ids, attention_mask, max_new_tokens=%d, "
                    "do_sample=False, **case)" % BEAM_NEW_TOKENS,
            "inputs": "input_ids / attention_mask of this file (T5: inputs.safetensors, right "
                      "padded; LLaMA: generate.safetensors prompts, left padded)",
            "cases": BEAM_CASES,
            "sequences": {k: list(v.shape) for k, v in out.items() if k.endswith("sequences")},
            "float64_check": "every case gives the same tokens with the model in float64",
        }
        with open(directory / "beam.json", "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
            f.write("\n")
        path.chmod(0o644)
        (directory / "beam.json").chmod(0o644)
        ok = True
    ok = ok and not near_ties
    print(f"{'ok  ' if ok else 'FAIL'} {name:24s} beam cases={len(BEAM_CASES)} "
          f"near-ties={near_ties or 'none'}")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append",
                        choices=sorted(FIXTURES) + sorted(LLAMA_FIXTURES) + [LLAMA_PROCESSORS]
                        + sorted(T5_FIXTURES) + [BEAM],
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
    names = args.only or (list(FIXTURES) + list(LLAMA_FIXTURES) + [LLAMA_PROCESSORS]
                          + list(T5_FIXTURES) + [BEAM])
    ok = True
    for name in names:
        if name == LLAMA_PROCESSORS:
            ok = make_llama_processors(out_dir, args.check) and ok
            continue
        if name == BEAM:
            for fixture in BEAM_FIXTURES:
                ok = beam_fixture(fixture, out_dir, args.check) and ok
            continue
        if name in T5_FIXTURES:
            if not args.check:
                make_t5_fixture(name, T5_FIXTURES[name], out_dir)
            ok = check_t5_fixture(name, T5_FIXTURES[name], out_dir) and ok
            continue
        if name in LLAMA_FIXTURES:
            if not args.check:
                make_llama_fixture(name, LLAMA_FIXTURES[name], out_dir)
            ok = check_llama_fixture(name, LLAMA_FIXTURES[name], out_dir) and ok
            continue
        if not args.check:
            make_fixture(name, FIXTURES[name], out_dir)
        ok = check_fixture(name, FIXTURES[name], out_dir) and ok
    dirs = [d for n in names for d in (BEAM_FIXTURES if n == BEAM else (n,))]
    total = sum(p.stat().st_size for d in dirs for p in (out_dir / d).iterdir())
    print(f"total {total} bytes in {len(names)} fixtures")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
