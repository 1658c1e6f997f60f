#!/usr/bin/python3
"""Checks `v4flash inspect DIR --tensor NAME --json` against an independent numpy computation.

The safetensors file is parsed here from scratch (header + raw bytes), FP8/FP4/BF16 values are
decoded from their bit layouts with numpy, and the statistics are computed in float64.
Usage: inspect_stats.py V4FLASH CHECKPOINT_DIR [TENSOR ...]
"""
import json
import struct
import subprocess
import sys

import numpy as np

DEFAULT_TENSORS = [
    "layers.0.attn.wq_b.weight",          # FP8 e4m3 x 128x128 E8M0 block scale
    "layers.3.attn.wo_a.weight",          # FP8, 2x2 scale blocks
    "layers.0.ffn.experts.3.w2.weight",   # packed FP4 x per-32 scale
    "mtp.0.ffn.experts.7.w1.weight",      # packed FP4
    "embed.weight",                       # BF16
    "hc_head_scale",                      # BF16 (the fixture's choice)
    "layers.1.attn.compressor.ape",       # F32
    "layers.2.hc_ffn_fn",                 # F32
    "layers.0.ffn.gate.tid2eid",          # I64
    "layers.0.attn.wq_b.scale",           # E8M0 on its own
]


def load_tensors(directory):
    """name -> (dtype, shape, bytes) for a single-file or sharded checkpoint (memory-mapped)."""
    try:
        with open(directory + "/model.safetensors.index.json") as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    except FileNotFoundError:
        files = ["model.safetensors"]
    out = {}
    for file in files:
        raw = np.memmap(directory + "/" + file, dtype=np.uint8, mode="r")
        (n,) = struct.unpack("<Q", raw[:8].tobytes())
        header = json.loads(raw[8:8 + n].tobytes())
        base = 8 + n
        for name, e in header.items():
            if name == "__metadata__":
                continue
            b, t = e["data_offsets"]
            out[name] = (e["dtype"], e["shape"], raw[base + b:base + t])
    return out


def e4m3(codes):
    c = codes.astype(np.int64)
    sign = np.where(c & 0x80, -1.0, 1.0)
    exp = (c >> 3) & 0xF
    man = c & 0x7
    val = np.where(exp == 0, man * 2.0 ** -9, (1 + man / 8.0) * 2.0 ** (exp - 7))
    val = np.where((c & 0x7F) == 0x7F, np.nan, val)
    return sign * val


def e8m0(codes):
    c = codes.astype(np.float64)
    return np.where(codes == 0xFF, np.nan, 2.0 ** (c - 127))


FP4 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6])


def decode(tensors, name):
    dtype, shape, data = tensors[name]
    scale_name = name[: -len(".weight")] + ".scale" if name.endswith(".weight") else None
    if dtype == "F8_E4M3" and scale_name in tensors:
        w = e4m3(np.frombuffer(data, np.uint8)).reshape(shape)
        _, sshape, sdata = tensors[scale_name]
        s = e8m0(np.frombuffer(sdata, np.uint8)).reshape(sshape)
        s_full = np.repeat(np.repeat(s, 128, axis=0), 128, axis=1)[: shape[0], : shape[1]]
        return w * s_full, shape
    if dtype == "I8" and scale_name in tensors:
        b = np.frombuffer(data, np.uint8).reshape(shape)
        logical = np.empty((shape[0], shape[1] * 2))
        logical[:, 0::2] = FP4[b & 15]   # low nibble = even element
        logical[:, 1::2] = FP4[b >> 4]
        _, sshape, sdata = tensors[scale_name]
        s = e8m0(np.frombuffer(sdata, np.uint8)).reshape(sshape)
        return logical * np.repeat(s, 32, axis=1), [shape[0], shape[1] * 2]
    if dtype == "BF16":
        u = np.frombuffer(data, np.uint16).astype(np.uint32) << 16
        return u.view(np.float32).astype(np.float64).reshape(shape), shape
    if dtype == "F32":
        return np.frombuffer(data, np.float32).astype(np.float64).reshape(shape), shape
    if dtype == "I64":
        return np.frombuffer(data, np.int64).astype(np.float64).reshape(shape), shape
    if dtype == "F8_E8M0":
        return e8m0(np.frombuffer(data, np.uint8)).reshape(shape), shape
    raise SystemExit(f"no decoder for {dtype}")


def close(a, b, rel=1e-6):
    return abs(a - b) <= rel * max(abs(b), 1e-12)


def main():
    exe, directory = sys.argv[1], sys.argv[2]
    names = sys.argv[3:] or DEFAULT_TENSORS
    tensors = load_tensors(directory)
    failures = 0
    for name in names:
        values, shape = decode(tensors, name)
        v = values.astype(np.float64).ravel()
        ref = {"count": v.size, "sum": float(np.sum(v)), "mean": float(np.mean(v)),
               "abs_max": float(np.max(np.abs(v))), "sum_sq": float(np.sum(v * v))}
        out = subprocess.run([exe, "inspect", directory, "--tensor", name, "--json"],
                             check=True, capture_output=True, text=True).stdout
        got = json.loads(out)
        problems = []
        if got["name"] != name:
            problems.append(f"name {got['name']}")
        if got["dtype"] != tensors[name][0]:
            problems.append(f"dtype {got['dtype']} != {tensors[name][0]}")
        if got["shape"] != list(shape):
            problems.append(f"shape {got['shape']} != {list(shape)}")
        if got["count"] != ref["count"]:
            problems.append(f"count {got['count']} != {ref['count']}")
        for key in ("sum", "mean", "abs_max", "sum_sq"):
            if not close(got[key], ref[key]):
                problems.append(f"{key} {got[key]!r} != numpy {ref[key]!r}")
        status = "ok" if not problems else "MISMATCH " + "; ".join(problems)
        print(f"{name:40s} {tensors[name][0]:8s} sum={ref['sum']:.9g} abs_max={ref['abs_max']:.9g} "
              f"sum_sq={ref['sum_sq']:.9g}: {status}")
        failures += bool(problems)
    if failures:
        raise SystemExit(f"{failures} tensor(s) disagree with numpy")


if __name__ == "__main__":
    main()
