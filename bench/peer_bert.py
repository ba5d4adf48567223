#!/usr/bin/env python3
"""The peers of bench_bert: PyTorch (transformers, inference_mode) and ONNX Runtime (CPU EP,
model exported from the same weights), kept loaded in one child process so the C benchmark
can interleave repetitions with ptm's.

Protocol (one line each way): the parent writes "torch B S" or "ort B S" (or "torch_int8",
"ort_int8": the same models with int8 weights, made on first use by each engine's own
dynamic quantization of every Linear / MatMul, activations quantized at run time); this
process runs one timed forward pass on the same inputs bench_bert.c builds and answers
"ms <float>". "quit" ends it. Usage: peer_bert.py MODEL_DIR THREADS
"""
import logging
import os
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModel  # noqa: E402


def inputs(b, s, vocab):
    """The ids bench_bert.c uses: a fixed formula, [CLS] first, [SEP] last, no padding."""
    i = np.arange(b)[:, None]
    j = np.arange(s)[None, :]
    ids = (i * 7919 + j * 104729) % (vocab - 2000) + 1000
    ids[:, 0] = 101
    ids[:, -1] = 102
    return ids.astype(np.int64), np.ones((b, s), np.int64), np.zeros((b, s), np.int64)


class Wrapped(torch.nn.Module):
    """Keyword arguments only: BertModel.forward's positional order differs across versions."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state


def int8_model(peer, model, onnx_path, so):
    """torch_int8: torch.ao dynamic quantization of the Linear layers (qint8 weights, fbgemm).
    ort_int8: onnxruntime.quantization.quantize_dynamic of the exported model (QInt8 weights)."""
    if peer == "torch_int8":
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    from onnxruntime.quantization import QuantType, quantize_dynamic
    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process, on every call
    q_path = onnx_path[:-len(".onnx")] + ".int8.onnx"
    quantize_dynamic(onnx_path, q_path, weight_type=QuantType.QInt8)
    return ort.InferenceSession(q_path, so, providers=["CPUExecutionProvider"])


def main():
    # the exported models (~110 MB) go when the peer does
    with tempfile.TemporaryDirectory(prefix="ptm_peer_bert_") as tmp:
        serve(sys.argv[1], int(sys.argv[2]), tmp)


def serve(model_dir, threads, tmp):
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    model = AutoModel.from_pretrained(model_dir).eval()
    vocab = model.config.vocab_size
    onnx_path = os.path.join(tmp, "model.onnx")
    ids, mask, types = inputs(2, 16, vocab)
    with torch.inference_mode():
        torch.onnx.export(
            Wrapped(model), (torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types)),
            onnx_path, input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"], opset_version=17, dynamo=False,
            dynamic_axes={n: {0: "b", 1: "s"} for n in
                          ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]})
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    models = {"torch": model, "ort": sess}
    cache = {}
    print("ready", flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        peer, b, s = parts[0], int(parts[1]), int(parts[2])
        if peer not in models:
            models[peer] = int8_model(peer, model, onnx_path, so)
        if (b, s) not in cache:
            cache[(b, s)] = inputs(b, s, vocab)
        ids, mask, types = cache[(b, s)]
        if peer.startswith("torch"):
            t = [torch.from_numpy(x) for x in (ids, mask, types)]
            with torch.inference_mode():
                t0 = time.perf_counter()
                models[peer](input_ids=t[0], attention_mask=t[1], token_type_ids=t[2])
                dt = time.perf_counter() - t0
        else:
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            t0 = time.perf_counter()
            models[peer].run(None, feed)
            dt = time.perf_counter() - t0
        print(f"ms {dt * 1e3:.4f}", flush=True)


if __name__ == "__main__":
    main()
