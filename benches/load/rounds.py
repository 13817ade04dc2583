"""How sure a ratio between two scenarios of the load harness is, over its rounds.

    python3 rounds.py NUMERATOR DENOMINATOR FILE...

Each FILE is the `round|scenario|req/s|...` record a harness kept (cluster.sh writes one with
`KEEP_ROUNDS=path`). NUMERATOR and DENOMINATOR are scenario indexes. Within each round of each
file the two rates are divided (runs next to each other in time); the median of those ratios is
printed with a bootstrap 90 % interval (rounds drawn with replacement, 10,000 times, a fixed seed
so that the same files always print the same interval). Several files pool their rounds: runs of
the same binary in different hours.
"""

import random
import statistics
import sys


def ratios(path, numerator, denominator):
    """The ratio within each round of one file."""
    rates = {}
    with open(path) as f:
        for line in f:
            fields = line.strip().split("|")
            if len(fields) < 3:
                continue
            rates[(fields[0], fields[1])] = float(fields[2])
    rounds = {r for (r, _) in rates}
    return [
        rates[(r, numerator)] / rates[(r, denominator)]
        for r in sorted(rounds, key=int)
        if (r, numerator) in rates and rates.get((r, denominator), 0) > 0
    ]


def bootstrap(values, draws=10_000, seed=1):
    """The 5th and 95th percentiles of the median of `values` drawn with replacement."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(draws))
    return medians[draws // 20], medians[draws - draws // 20 - 1]


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    numerator, denominator, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
    values = [v for p in paths for v in ratios(p, numerator, denominator)]
    if not values:
        sys.exit("rounds.py: no round has both scenarios")
    low, high = bootstrap(values)
    print(f"median {statistics.median(values):.3f} over {len(values)} rounds, 90 % interval {low:.3f}-{high:.3f}")


if __name__ == "__main__":
    main()
