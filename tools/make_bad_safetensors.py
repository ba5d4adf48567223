#!/usr/bin/env python3
"""Generate the safetensors test fixtures (dev-time only; outputs are committed).

tests/fixtures/bad/  one tiny malformed file per fault, named after it, for the reader's
                     data-driven test (tests/test_safetensors.c lists the status and the word
                     each message must contain), plus the helper shards the bad indexes use.
tests/fixtures/st/   good files written by the Python `safetensors` library and by
                     `huggingface_hub.save_torch_state_dict`, with a plain-text `.expect`
                     sidecar describing every tensor, so the C tests check our reader against
                     the reference writer without hand-written numbers.

Tensor bytes follow pattern(seed, n): byte j = (j * 31 + seed * 7 + 3) & 0xff, BOOL j & 1.
The C tests regenerate it. Run: python3 tools/make_bad_safetensors.py
"""
import json
import os
import shutil
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
BAD = os.path.join(ROOT, "bad")
GOOD = os.path.join(ROOT, "st")


def pattern(seed, n, is_bool=False):
    if is_bool:
        return bytes(j & 1 for j in range(n))
    return bytes((j * 31 + seed * 7 + 3) & 0xFF for j in range(n))


def st_bytes(header, data=b"", hlen=None, pad=True):
    """A safetensors image; header is a dict/list (dumped compactly) or raw bytes."""
    if not isinstance(header, (bytes, bytearray)):
        header = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        header += b" " * ((8 - len(header) % 8) % 8)
    n = len(header) if hlen is None else hlen
    return struct.pack("<Q", n) + header + data


def t(dtype="F32", shape=(2,), offs=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offs)}


def write(name, content):
    with open(os.path.join(BAD, name), "wb") as f:
        f.write(content if isinstance(content, (bytes, bytearray)) else content.encode())


def make_bad():
    shutil.rmtree(BAD, ignore_errors=True)
    os.makedirs(BAD)
    d8 = bytes(8)
    write("empty_file.safetensors", b"")
    write("too_small.safetensors", b"\x10\x00\x00")
    write("header_past_eof.safetensors", st_bytes({"a": t()}, d8, hlen=4096))
    write("header_too_large.safetensors", st_bytes({"a": t()}, d8, hlen=200_000_000))
    write("not_utf8.safetensors", st_bytes(b'{"a\xff":' + json.dumps(t()).encode() + b"}", d8))
    write("overlong_utf8.safetensors", st_bytes(b'{"a\xc0\xaf":' + json.dumps(t()).encode() + b"}", d8))
    write("not_json.safetensors", st_bytes(b'{"a": {"dtype": "F32", ', d8))
    write("not_object.safetensors", st_bytes([1, 2], d8))
    write("entry_not_object.safetensors", st_bytes({"a": 5}, d8))
    write("missing_dtype.safetensors", st_bytes({"a": {"shape": [2], "data_offsets": [0, 8]}}, d8))
    write("missing_shape.safetensors", st_bytes({"a": {"dtype": "F32", "data_offsets": [0, 8]}}, d8))
    write("missing_offsets.safetensors", st_bytes({"a": {"dtype": "F32", "shape": [2]}}, d8))
    write("dtype_not_string.safetensors", st_bytes({"a": t(dtype=7)}, d8))
    write("bad_dtype.safetensors", st_bytes({"a": t(dtype="F33")}, d8))
    write("dtype_alias.safetensors", st_bytes({"a": t(dtype="float32")}, d8))
    write("shape_not_array.safetensors",
          st_bytes({"a": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}}, d8))
    write("shape_negative.safetensors", st_bytes({"a": t(shape=(-2,))}, d8))
    write("shape_float.safetensors", st_bytes(b'{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}', d8))
    write("shape_overflow.safetensors", st_bytes({"a": t(shape=(2**32, 2**32, 2))}, d8))
    write("too_many_dims.safetensors", st_bytes({"a": t(shape=(1,) * 9, offs=(0, 4))}, bytes(4)))
    write("size_mismatch.safetensors", st_bytes({"a": t(shape=(3,))}, d8))
    write("begin_after_end.safetensors", st_bytes({"a": t(shape=(0,), offs=(8, 4))}, d8))
    write("offsets_past_eof.safetensors", st_bytes({"a": t(shape=(4,), offs=(0, 16))}, d8))
    write("offsets_wrong_len.safetensors", st_bytes({"a": t(offs=(0,))}, d8))
    write("offsets_negative.safetensors", st_bytes({"a": t(offs=(-8, 0))}, d8))
    write("offsets_huge.safetensors", st_bytes(b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551616]}}', d8))
    write("overlap.safetensors", st_bytes({"a": t(offs=(0, 8)), "b": t(offs=(4, 12))}, bytes(12)))
    write("gap.safetensors", st_bytes({"a": t(offs=(0, 8)), "b": t(offs=(12, 20))}, bytes(20)))
    write("first_not_zero.safetensors", st_bytes({"a": t(offs=(4, 12))}, bytes(12)))
    write("trailing_bytes.safetensors", st_bytes({"a": t()}, bytes(12)))
    write("dup_name.safetensors", st_bytes(b'{"a":' + json.dumps(t()).encode() + b',"a":'
                                            + json.dumps(t(offs=(8, 16))).encode() + b"}", bytes(16)))
    write("metadata_not_object.safetensors", st_bytes({"__metadata__": "x", "a": t()}, d8))
    write("metadata_not_string.safetensors", st_bytes({"__metadata__": {"format": 1}, "a": t()}, d8))
    write("unknown_field.safetensors", st_bytes({"a": dict(t(), extra=1)}, d8))
    write("trailing_garbage.safetensors", st_bytes(json.dumps({"a": t()}).encode() + b" x", d8))
    write("nul_padding.safetensors", st_bytes(json.dumps({"a": t()}).encode() + b"\0\0\0", d8, pad=False))
    write("deep_nesting.safetensors", st_bytes(b'{"__metadata__":' + b"[" * 100 + b"]" * 100 + b"}", b""))
    write("bad_escape.safetensors", st_bytes(b'{"a\\q":' + json.dumps(t()).encode() + b"}", d8))
    write("lone_surrogate.safetensors", st_bytes(b'{"a\\ud800":' + json.dumps(t()).encode() + b"}", d8))
    write("nul_escape.safetensors", st_bytes(b'{"a\\u0000b":' + json.dumps(t()).encode() + b"}", d8))
    write("control_in_string.safetensors", st_bytes(b'{"a\nb":' + json.dumps(t()).encode() + b"}", d8))
    write("leading_zero.safetensors", st_bytes(b'{"a":{"dtype":"F32","shape":[02],"data_offsets":[0,8]}}', d8))

    # Sharded sets. part_good.safetensors holds "a" (F32 [2]); part_bad has a gap.
    write("part_good.safetensors", st_bytes({"a": t()}, d8))
    write("part_bad.safetensors", st_bytes({"a": t(offs=(0, 8)), "b": t(offs=(12, 20))}, bytes(20)))

    def index(name, weight_map, meta=None, raw=None):
        obj = {"metadata": meta if meta is not None else {"total_size": 8}, "weight_map": weight_map}
        write(name + ".safetensors.index.json", raw if raw is not None else json.dumps(obj, indent=2))

    index("index_traversal", {"a": "../bad/part_good.safetensors"})
    index("index_absolute", {"a": "/etc/passwd"})
    index("index_dotdot", {"a": ".."})
    index("index_missing_shard", {"a": "part_absent.safetensors"})
    index("index_tensor_missing", {"a": "part_good.safetensors", "zz": "part_good.safetensors"})
    index("index_bad_shard", {"a": "part_bad.safetensors"})
    index("index_no_weight_map", None, raw=json.dumps({"metadata": {"total_size": 8}}))
    index("index_weight_map_not_string", {"a": 3})
    index("index_total_size_negative", {"a": "part_good.safetensors"}, meta={"total_size": -1})
    index("index_total_size_float", {"a": "part_good.safetensors"}, meta={"total_size": 8.5})
    index("index_not_json", None, raw='{"weight_map": {"a": "part_good.safetensors"')
    index("index_dup_key", None, raw='{"weight_map": {"a": "part_good.safetensors", '
                                     '"a": "part_good.safetensors"}}')
    index("index_not_object", None, raw="[]")
    index("index_ok", {"a": "part_good.safetensors"})


def good_torch():
    import torch
    from huggingface_hub import save_torch_state_dict
    from safetensors.torch import save_file

    dtypes = [("F64", torch.float64), ("F32", torch.float32), ("F16", torch.float16),
              ("BF16", torch.bfloat16), ("I64", torch.int64), ("I32", torch.int32),
              ("I16", torch.int16), ("I8", torch.int8), ("U8", torch.uint8),
              ("BOOL", torch.bool), ("F8_E4M3", torch.float8_e4m3fn),
              ("F8_E5M2", torch.float8_e5m2)]
    shapes = [(2, 3), (5,), (), (0, 3), (1, 2, 1, 2), (3, 1)]
    tensors, expect, seed = {}, [], 0
    for k, (name, dt) in enumerate(dtypes):
        shape = shapes[k % len(shapes)]
        n = 1
        for s in shape:
            n *= s
        nbytes = n * torch.empty((), dtype=dt).element_size()
        raw = pattern(seed, nbytes, name == "BOOL")
        ten = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dt).reshape(shape) \
            if nbytes else torch.empty(shape, dtype=dt)
        tname = f"layer.{k}.{name.lower()}"
        tensors[tname] = ten
        expect.append(f"{tname} {name} {len(shape)} {' '.join(map(str, shape))} {seed}".replace("  ", " "))
        seed += 1
    shutil.rmtree(GOOD, ignore_errors=True)
    os.makedirs(GOOD)
    meta = {"format": "pt", "note": "caf\u00e9 \u2713"}
    save_file(tensors, os.path.join(GOOD, "all_dtypes.safetensors"), metadata=meta)
    with open(os.path.join(GOOD, "all_dtypes.expect"), "w") as f:
        f.write("# name dtype ndim dims... seed; bytes = pattern(seed) (tools/make_bad_safetensors.py)\n")
        f.write("\n".join(expect) + "\n")
    # A sharded set written by huggingface_hub itself (its shard plan and index format), with
    # 9 F32 tensors of 100 bytes each and max_shard_size 250 bytes: 5 shards.
    sharded = {}
    sexpect = []
    for k in range(9):
        raw = pattern(100 + k, 100)
        sharded[f"w.{k}"] = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(torch.float32)
        sexpect.append(f"w.{k} F32 1 25 {100 + k}")
    sdir = os.path.join(GOOD, "sharded")
    os.makedirs(sdir)
    save_torch_state_dict(sharded, sdir, max_shard_size=250, metadata={"format": "pt"})
    with open(os.path.join(sdir, "sharded.expect"), "w") as f:
        f.write("# name dtype ndim dims... seed; bytes = pattern(seed) (tools/make_bad_safetensors.py)\n")
        f.write("\n".join(sexpect) + "\n")


if __name__ == "__main__":
    make_bad()
    if "--bad-only" not in sys.argv:
        good_torch()
    print(f"wrote {len(os.listdir(BAD))} files to {BAD} and the good files to {GOOD}")
