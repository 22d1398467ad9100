#!/usr/bin/env python3
"""Prints the kafkawire / kafka-protocol ratio table from criterion's
results (target/criterion/*/*/new/estimates.json), using median times.

Records per batch and uncompressed batch size are fixed by benches/record.rs
(546 x 100-byte and 62 x 1 KiB records, ~64 KiB uncompressed).
"""
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..", "target", "criterion")
RECORDS = {"100B": 546, "1KiB": 62}
BYTES = {"100B": 64907, "1KiB": 64603}
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def median_ns(group, fn):
    p = os.path.join(ROOT, group, fn, "new", "estimates.json")
    if not os.path.exists(p):
        return None
    return json.load(open(p))["median"]["point_estimate"]


def fmt_rate(ns, size):
    if ns is None:
        return "-"
    mib = BYTES[size] / (ns / 1e9) / (1 << 20)
    recs = RECORDS[size] / (ns / 1e9) / 1e6
    return f"{mib:,.0f} MiB/s, {recs:.2f} M rec/s"


def main():
    label = sys.argv[1] if len(sys.argv) > 1 else "kafkawire"
    print(f"| op | codec | records | {label} | kafka-protocol | ratio |")
    print("|---|---|---|---|---|---|")
    for op in ["encode", "decode"]:
        for size in ["100B", "1KiB"]:
            for codec in CODECS:
                group = f"{op}_{codec}_{size}"
                base = median_ns(group, "kafka-protocol")
                fns = ["kafkawire"] + (["kafkawire-owned"] if op == "decode" else [])
                for fn in fns:
                    ours = median_ns(group, fn)
                    if ours is None or base is None:
                        continue
                    name = codec + (" (owned Bytes)" if fn.endswith("owned") else "")
                    print(f"| {op} | {name} | {size} | {fmt_rate(ours, size)} | "
                          f"{fmt_rate(base, size)} | **{base / ours:.2f}x** |")


main()
