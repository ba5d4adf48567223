#!/usr/bin/env python3
"""The peers of bench_t5: CTranslate2 (float32 and int8, models converted from the same weights
by tools/make_t5_bench_model.py) and transformers on PyTorch (float32, inference_mode), kept
loaded in one child process so the C benchmark can interleave repetitions with ptm's.

Every engine does greedy search for exactly NEW tokens: CTranslate2 with beam_size 1 and
min_decoding_length = max_decoding_length = NEW, transformers with num_beams 1 and
min_new_tokens = max_new_tokens = NEW (end of sequence is suppressed until then, in both).

On start it prints "ready ENGINES | VERSIONS". Protocol (one line each way): the parent writes "ENGINE B NEW" with ENGINE one of torch, ct2,
ct2-int8; this process runs one timed generation over the source ids bench_t5.c builds and
answers "ms <float> new <tokens generated per row> row0 <row 0's new ids, comma separated>",
or "error <message>". "quit" ends it.
Usage: peer_t5.py MODEL_DIR THREADS (the CTranslate2 models are MODEL_DIR-ct2[-int8]).
"""
import os
import sys
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import ctranslate2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import T5ForConditionalGeneration  # noqa: E402

SRC_LEN = 32
MASK64 = (1 << 64) - 1
SPECIALS = ["<pad>", "</s>", "<unk>"]  # ids 0, 1, 2 of tools/make_t5_bench_model.py's vocabulary


def source_ids(b, vocab):
    """The ids bench_t5.c uses: SRC_LEN - 1 ids from a 64-bit LCG seeded per row, drawn from
    [3, vocab) (no pad, eos or unk inside), then eos (1), as T5's tokenizer ends a sequence."""
    ids = np.zeros((b, SRC_LEN), np.int64)
    for i in range(b):
        state = (0x5EED + i * 0x9E3779B97F4A7C15) & MASK64
        for j in range(SRC_LEN - 1):
            state = (state * 6364136223846793005 + 1442695040888963407) & MASK64
            ids[i, j] = 3 + (state >> 33) % (vocab - 3)
        ids[i, -1] = 1
    return ids


def token(i):
    """The placeholder token of id i in the bench model's vocabulary."""
    return SPECIALS[i] if i < len(SPECIALS) else f"t{i}"


class Peers:
    def __init__(self, model_dir, threads):
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        self.torch = T5ForConditionalGeneration.from_pretrained(model_dir).eval()
        self.vocab = self.torch.config.vocab_size
        self.ct2 = {}
        for name, suffix, compute in (("ct2", "-ct2", "float32"),
                                      ("ct2-int8", "-ct2-int8", "int8")):
            path = model_dir.rstrip("/") + suffix
            if os.path.exists(os.path.join(path, "model.bin")):
                self.ct2[name] = ctranslate2.Translator(path, device="cpu", compute_type=compute,
                                                        inter_threads=1, intra_threads=threads)
        self.ids = {}

    def source(self, b):
        if b not in self.ids:
            ids = source_ids(b, self.vocab)
            self.ids[b] = (ids, [[token(int(t)) for t in row] for row in ids])
        return self.ids[b]

    def run(self, engine, b, new):
        """One timed generation; (ms, tokens per row, row 0's new ids)."""
        ids, toks = self.source(b)
        if engine == "torch":
            x = torch.from_numpy(ids)
            with torch.inference_mode():
                t0 = time.perf_counter()
                out = self.torch.generate(input_ids=x, attention_mask=torch.ones_like(x),
                                          do_sample=False, num_beams=1, max_new_tokens=new,
                                          min_new_tokens=new)
                dt = time.perf_counter() - t0
            rows = [[int(t) for t in row[1:]] for row in out]  # drop decoder_start
        else:
            tr = self.ct2[engine]
            t0 = time.perf_counter()
            res = tr.translate_batch(toks, beam_size=1, max_decoding_length=new,
                                     min_decoding_length=new, max_batch_size=0)
            dt = time.perf_counter() - t0
            rows = [[self.id_of(t) for t in r.hypotheses[0]] for r in res]
        n = min(len(r) for r in rows)
        return dt * 1e3, n, rows[0]

    @staticmethod
    def id_of(tok):
        """The id of a placeholder token (token's inverse)."""
        return int(tok[1:]) if tok.startswith("t") else SPECIALS.index(tok)


def main():
    model_dir, threads = sys.argv[1], int(sys.argv[2])
    peers = Peers(model_dir, threads)
    # The engines loaded, then what the results depend on: versions and CTranslate2's GEMM
    # backend choice (CT2_USE_MKL unset: by CPU vendor, MKL on Intel, oneDNN elsewhere).
    import transformers
    about = (f"ctranslate2={ctranslate2.__version__} CT2_USE_MKL="
             f"{os.environ.get('CT2_USE_MKL', 'auto')} torch={torch.__version__} "
             f"transformers={transformers.__version__}")
    print("ready " + " ".join(["torch"] + sorted(peers.ct2)) + " | " + about, flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        engine, b, new = parts[0], int(parts[1]), int(parts[2])
        if engine != "torch" and engine not in peers.ct2:
            print(f"error {engine} not loaded", flush=True)
            continue
        ms, n, row0 = peers.run(engine, b, new)
        print(f"ms {ms:.4f} new {n} row0 {','.join(str(t) for t in row0)}", flush=True)


if __name__ == "__main__":
    main()
