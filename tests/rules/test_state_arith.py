"""state.to_fen is round(x, 2) bit for bit (its fast path must never give another float)."""

import random
import struct

from services.rules.state import to_fen


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def test_to_fen_gives_the_same_float_as_round():
    rng = random.Random(20261203)
    cases = [0.0, -0.0, 1.005, 2.675, 0.125, 0.375, -0.125, -0.001, 0.015, 0.025, 1.115, 9999999.995,
             1e300, -1e300, float("inf"), float("-inf"), 5e-324]
    for _ in range(200_000):
        k = rng.random()
        if k < 0.4:  # sums of amounts in fen, as the stay accumulators make them
            cases.append(sum(rng.randint(-100_000, 1_000_000) / 100 for _ in range(rng.randint(1, 6))))
        elif k < 0.7:  # halves of a fen and their neighbours
            cases.append(rng.randint(-10**7, 10**9) / 1000 + rng.choice([0.0, 0.005, -0.005, 0.0049999999, 0.00500001]))
        else:
            cases.append(rng.uniform(-1.0, 1.0) * 10 ** rng.randint(-8, 12))
    wrong = [x for x in cases if _bits(to_fen(x)) != _bits(round(x, 2))]
    assert wrong == []


def test_to_fen_keeps_nan():
    x = to_fen(float("nan"))
    assert x != x
