#!/usr/bin/env python3
"""Searches files (recursively) for canary strings in plain form, lower and
upper hex, and base64 at the three byte alignments. Prints each hit as
"PATH: CANARY (encoding)" and exits 1 when anything is found, 0 otherwise.
Usage: find_canary.py CANARY[,CANARY...] PATH..."""
import base64
import os
import sys


def encodings(c):
    b = c.encode()
    yield "plain", b
    yield "hex", b.hex().encode()
    yield "HEX", b.hex().upper().encode()
    for skip in range(3):
        body = b[skip:]
        body = body[: len(body) - len(body) % 3]
        if len(body) >= 6:
            yield "base64+%d" % skip, base64.b64encode(body)


def files(paths):
    for p in paths:
        if os.path.isdir(p):
            for root, _, names in os.walk(p):
                for n in names:
                    yield os.path.join(root, n)
        elif os.path.isfile(p):
            yield p


def main():
    canaries = sys.argv[1].split(",")
    hits = 0
    for f in files(sys.argv[2:]):
        if os.path.islink(f):
            continue
        try:
            with open(f, "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        for c in canaries:
            for name, enc in encodings(c):
                if enc in data:
                    print("%s: %s (%s)" % (f, c, name))
                    hits += 1
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())
