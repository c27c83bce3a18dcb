"""The state update's arithmetic shortcuts give exactly what they replace: state.to_fen is round(x, 2)
bit for bit, state.past_from the month arithmetic of the folded-supply bound."""

import random
import struct

from services.rules.state import PAST_MONTHS, past_from, to_fen
from services.rules.timeutil import month_of_day


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


def test_past_from_is_the_first_day_of_the_month_past_months_before():
    for day in range(20_000, 21_200):  # 2024-10 .. 2028-01, every year boundary
        oldest = month_of_day(day) - PAST_MONTHS
        if not 1 <= oldest % 100 <= 12:  # into the year before: 202601 - 2 → 202599 → 202511
            oldest -= 88
        first = past_from(day)
        assert month_of_day(first) == oldest
        assert month_of_day(first - 1) < oldest
