"""Novelty against the training corpus: building a CorpusIndex (suffix array) over 红楼梦 and
finding what 20 samples of 200 characters copy from it.

    python benchmarks/bench_novelty.py                       # hongloumeng, 20 × 200 chars
    python benchmarks/bench_novelty.py --corpus tinyshakespeare --samples 100

Samples are made so that copies exist: random slices of the corpus (5-60 characters) alternate
with random characters drawn from the corpus (5-30 of them), cut to the sample length. Prints the
index build time and the query time (``novelty``: matching statistics of every sample, 8-gram
overlap, longest copy), each the median of ``--repeats`` runs, their total, and pass/fail
against the target (build + query < 10 s on the 2-core machine).
"""

from __future__ import annotations

import random
import time

from _common import parser, timed

from xuxie.analysis import CorpusIndex, novelty
from xuxie.corpus import read_corpus


def make_samples(text: str, count: int, length: int, seed: int) -> tuple[list[str], list[int]]:
    """``count`` samples of ``length`` characters mixing corpus slices and random characters; also
    returns the longest slice planted in each sample (a lower bound for its longest copy)."""
    rng = random.Random(seed)
    samples, planted = [], []
    for _ in range(count):
        parts, longest, size = [], 0, 0
        while size < length:
            k = min(rng.randint(5, 60), length - size)
            p = rng.randrange(len(text) - k)
            parts.append(text[p:p + k])
            longest = max(longest, k)
            size += k
            noise = "".join(text[rng.randrange(len(text))] for _ in range(rng.randint(5, 30)))
            parts.append(noise)
            size += len(noise)
        samples.append("".join(parts)[:length])
        planted.append(longest)
    return samples, planted


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--corpus", default="hongloumeng")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--length", type=int, default=200)
    ap.add_argument("--n", type=int, default=8, help="n-gram size for the overlap")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", type=float, default=10.0, help="seconds allowed for build + query")
    args = ap.parse_args()

    t = time.perf_counter()
    text = read_corpus(args.corpus).text
    t_read = time.perf_counter() - t
    samples, planted = make_samples(text, args.samples, args.length, args.seed)
    print(f"corpus {args.corpus}: {len(text):,} characters ({len(set(text)):,} distinct), read in {t_read:.2f} s")
    print(f"{len(samples)} samples × {args.length} characters, seed {args.seed}")

    t_build = timed(lambda: CorpusIndex(text), args.repeats)
    index = CorpusIndex(text)
    t_query = timed(lambda: novelty(samples, index, args.n), args.repeats)
    result = novelty(samples, index, args.n)
    copies = [index.longest_copy(s)[0] for s in samples]
    found = all(c >= p for c, p in zip(copies, planted))

    print(f"\nnovelty: {', '.join(f'{k} {v:.3f}' for k, v in result.items())}")
    print(f"longest planted slice found in every sample: {'yes' if found else 'NO'}")
    print(f"\ntimes (median of {args.repeats}):")
    print(f"  build index (suffix array):  {t_build:7.3f} s")
    print(f"  novelty of {len(samples)} samples:      {t_query:7.3f} s  ({1000 * t_query / len(samples):.1f} ms per sample)")
    total = t_build + t_query
    verdict = "PASS" if total < args.target and found else "FAIL"
    print(f"  total:                       {total:7.3f} s   target < {args.target:g} s: {verdict}")
    print(f"  (reading the corpus once:    {t_read:7.3f} s; total with it {total + t_read:.3f} s)")


if __name__ == "__main__":
    main()
