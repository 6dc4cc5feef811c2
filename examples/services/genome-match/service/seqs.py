"""DNA sequence helpers: validation, reverse complement, FASTA, k-mer index."""

COMPLEMENT = str.maketrans("ACGTN", "TGCAN")
BASES = frozenset("ACGTN")


def clean(seq):
    s = "".join(seq.split()).upper()
    bad = set(s) - BASES
    if bad:
        raise ValueError("not a DNA sequence: unexpected %s" % "".join(sorted(bad)))
    return s


def reverse_complement(seq):
    return seq.translate(COMPLEMENT)[::-1]


def parse_fasta(text):
    """Returns [(name, sequence)] from FASTA text."""
    records, name, parts = [], None, []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            if name is not None:
                records.append((name, clean("".join(parts))))
            name, parts = line[1:].strip() or "seq%d" % (len(records) + 1), []
        else:
            if name is None:
                raise ValueError("FASTA: sequence before the first '>' header")
            parts.append(line)
    if name is not None:
        records.append((name, clean("".join(parts))))
    return records


def kmer_index(seq, k):
    index = {}
    for i in range(len(seq) - k + 1):
        index.setdefault(seq[i:i + k], []).append(i)
    return index
