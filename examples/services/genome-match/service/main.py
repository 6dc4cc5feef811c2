"""genome-match: seed-and-extend approximate matching of reads.

Input JSON: {"reference": FASTA text, "reads": FASTA text,
"max_mismatches": k}. A read of length m with at most k mismatches shares
an exact piece of length m // (k + 1) with the reference (pigeonhole), so
candidates come from a k-mer index and are verified by Hamming distance.
"""
import json

from seqs import kmer_index, parse_fasta, reverse_complement


def hamming_at(ref, pos, read, limit):
    if pos < 0 or pos + len(read) > len(ref):
        return limit + 1
    d = 0
    for a, b in zip(ref[pos:pos + len(read)], read):
        if a != b or a == "N":
            d += 1
            if d > limit:
                break
    return d


def find(ref, index, seed, read, k):
    hits = set()
    for piece in range(k + 1):
        start = piece * seed
        for pos in index.get(read[start:start + seed], ()):
            cand = pos - start
            d = hamming_at(ref, cand, read, k)
            if d <= k:
                hits.add((cand, d))
    return sorted(hits)


def main(input):
    req = json.loads(input)
    k = int(req.get("max_mismatches", 1))
    if not 0 <= k <= 4:
        raise ValueError("max_mismatches must be between 0 and 4")
    refs = parse_fasta(req["reference"])
    reads = parse_fasta(req["reads"])
    out = []
    for read_name, read in reads:
        seed = len(read) // (k + 1)
        if seed < 4:
            raise ValueError("read %s too short for %d mismatches" % (read_name, k))
        matches = []
        for ref_name, ref in refs:
            index = kmer_index(ref, seed)
            for strand, s in (("+", read), ("-", reverse_complement(read))):
                for pos, d in find(ref, index, seed, s, k):
                    matches.append({"ref": ref_name, "pos": pos,
                                    "strand": strand, "mismatches": d})
        matches.sort(key=lambda m: (m["mismatches"], m["ref"], m["pos"], m["strand"]))
        out.append({"read": read_name, "length": len(read), "matches": matches})
    mapped = sum(1 for r in out if r["matches"])
    return json.dumps({"reads": out, "mapped": mapped, "total": len(out)},
                      sort_keys=True)
