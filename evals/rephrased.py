"""Tasks of the learning benchmark's kinds in other words, with values in other places.

A learned procedure that only parses one generator's template is not a skill
(docs/decisions.md#rephrased-check): this writes a `jsonl` suite of the same kinds of problem
(counting primes in a range, converting between bases, reversing a word, factorising) phrased
several other ways, answers computed here, to evaluate a learned library on with
`memento eval --suite jsonl --path FILE --library-from RUN_DIR`.

    python -m memento_skills.evals.rephrased --out runs/rephrased.jsonl [--per-kind 5] [--seed 11]
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path

DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
WORDS = (
    "lantern", "quarry", "thimble", "orchard", "meadow", "pilgrim", "saddle", "walnut", "harbor",
    "cobalt", "juniper", "falcon", "velvet", "granite", "riddle", "tundra", "marble", "copper",
)  # fmt: skip


def _primes_between(a: int, b: int) -> int:
    sieve = bytearray([1]) * (b + 1)
    sieve[:2] = b"\x00\x00"
    for i in range(2, int(b**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))
    return sum(sieve[a : b + 1])


def _to_base(n: int, base: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, base)
        out = DIGITS[r] + out
        if n == 0:
            return out


def _factors(n: int) -> list[int]:
    found, p = [], 2
    while p * p <= n:
        while n % p == 0:
            found.append(p)
            n //= p
        p += 1
    return [*found, n] if n > 1 else found


def primes(rng: random.Random, i: int) -> tuple[str, str]:
    a = rng.randint(100, 4000)
    b = a + rng.randint(200, 3000)
    text = (
        f"In the closed interval from {a} to {b}, how many integers are prime?",
        f"I need the number of primes p with {a} <= p <= {b}. Reply with just that count.",
        f"Between {b} (upper end) and {a} (lower end), both ends included, count the primes.",
    )[i % 3]
    return text, str(_primes_between(a, b))


def bases(rng: random.Random, i: int) -> tuple[str, str]:
    src, dst = rng.sample([2, 3, 5, 7, 8, 9, 12, 16, 20], 2)
    n = rng.randint(50, 5000)
    shown = _to_base(n, src)
    text = (
        f"Write the number {shown}, given in base {src}, in base {dst}. Use lowercase letters "
        "for digits above 9.",
        f"Take {shown} (a base-{src} numeral) and express it in base {dst} (lowercase letters "
        "for digit values of ten and up).",
        f"What is the base {dst} representation of the base {src} value {shown}? Digits beyond 9 "
        "are lowercase letters.",
    )[i % 3]
    return text, _to_base(n, dst)


def backward(rng: random.Random, i: int) -> tuple[str, str]:
    word = rng.choice(WORDS)
    text = (
        f"Reverse the order of the letters in '{word}'.",
        f"Write {word} from its last letter to its first.",
        f"What do you get when the word {word} is read right to left? Answer with the letters only.",
    )[i % 3]
    return text, word[::-1]


def factorise(rng: random.Random, i: int) -> tuple[str, str]:
    n = rng.randint(40, 3000)
    text = (
        f"Break {n} into its prime factors, smallest first, joined by ' × '.",
        f"List the primes whose product is {n} (with repeats), written as p × q × ... in "
        "ascending order.",
        f"Express the integer {n} as a product of primes, e.g. 12 = 2 × 2 × 3; give only the "
        "right-hand side.",
    )[i % 3]
    return text, " × ".join(map(str, _factors(n)))


KINDS: dict[str, Callable[[random.Random, int], tuple[str, str]]] = {
    "primes-in-range": primes,
    "base-change": bases,
    "reverse-word": backward,
    "factorise": factorise,
}


def write(out: Path, per_kind: int, seed: int) -> int:
    rng = random.Random(seed)
    rows = []
    for kind, make in KINDS.items():
        for i in range(per_kind):
            question, answer = make(rng, i)
            rows.append({"id": f"{kind}-{i}", "question": question, "answer": answer})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return len(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--per-kind", type=int, default=5)
    p.add_argument("--seed", type=int, default=11)
    a = p.parse_args(argv)
    print(f"{write(a.out, a.per_kind, a.seed)} tasks written to {a.out}")


if __name__ == "__main__":
    main()
