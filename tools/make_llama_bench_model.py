#!/usr/bin/env python3
"""Write the random LLaMA checkpoints of the generation benchmark (never committed).

TinyLlama-1.1B-shaped: hidden 2048, intermediate 5632, 22 layers, 32 heads, 4 KV heads,
vocab 32000, rope_theta 10000, untied embeddings -- 1.10 B parameters. Matrices are random
(normal(0, 0.02), seed 0), norms are ones (as HF initialises them), and transformers'
save_pretrained writes them in bfloat16 and in float16 (the same values, rounded from one
float32 draw), so the files are exactly what a user would have. bench/bench_llama.c feeds token
ids and needs no tokenizer; a synthetic 32000-piece SentencePiece tokenizer.model is written
next to the weights only so that llama.cpp's convert_hf_to_gguf.py can make its GGUF peer.

    python3 tools/make_llama_bench_model.py [--out-dir bench/models]
        -> bench/models/llama-1b-bf16, bench/models/llama-1b-f16
"""
import argparse
import os

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def config():
    return LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                       num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
                       max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0,
                       tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)


def random_model():
    """The model in float32 with seeded weights, built on the meta device then filled
    tensor by tensor: HF's own initialisation of 1.1 B parameters takes minutes."""
    torch.manual_seed(0)
    with torch.device("meta"):
        model = LlamaForCausalLM(config())
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            if p.dim() == 1:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02)
    return model


def write_tokenizer(path, vocab_size):
    """A SentencePiece model of vocab_size pieces: <unk> <s> </s>, the 256 byte pieces, then
    placeholder words. It only has to load; nothing is tokenized with it."""
    from sentencepiece import sentencepiece_model_pb2 as sp

    m = sp.ModelProto()
    m.trainer_spec.model_type = sp.TrainerSpec.BPE
    m.trainer_spec.vocab_size = vocab_size
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id = 0, 1, 2
    m.trainer_spec.pad_id = -1
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = True
    Piece = sp.ModelProto.SentencePiece
    for text, kind in (("<unk>", Piece.UNKNOWN), ("<s>", Piece.CONTROL), ("</s>", Piece.CONTROL)):
        m.pieces.add(piece=text, score=0.0, type=kind)
    for b in range(256):
        m.pieces.add(piece=f"<0x{b:02X}>", score=0.0, type=Piece.BYTE)
    for i in range(vocab_size - len(m.pieces)):
        m.pieces.add(piece=f"\u2581w{i}", score=-float(i), type=Piece.NORMAL)
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out-dir", default=os.path.join(root, "bench", "models"))
    args = ap.parse_args()
    outs = {torch.bfloat16: os.path.join(args.out_dir, "llama-1b-bf16"),
            torch.float16: os.path.join(args.out_dir, "llama-1b-f16")}
    todo = {dt: d for dt, d in outs.items() if not os.path.exists(os.path.join(d, "config.json"))}
    for d in set(outs.values()) - set(todo.values()):
        print(f"{d}: already there")
    if not todo:
        return
    for dtype, out in todo.items():
        model = random_model().to(dtype)  # the same seed, so the same float32 draw each time
        n_params = sum(p.numel() for p in model.parameters())
        model.save_pretrained(out, max_shard_size="5GB")
        write_tokenizer(os.path.join(out, "tokenizer.model"), model.config.vocab_size)
        size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
        print(f"{out}: {n_params / 1e9:.2f} B parameters, {size / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
