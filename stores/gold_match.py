"""Whether a text gives a gold answer away, in any form a reader could recover it from.

One matcher for everything that guards golds: the gate (a skill stating a gold never goes live),
the judge (a critique must not quote it) and `memento leaks` (a run's library and its history).
It lives at the lowest floor so the agent's nodes need not import the evals harness.

Forms, each with the floor below which it is not looked for (a gold "3" or "yes" appears in
almost any text, and a form must not refuse every skill because of one):

verbatim
    whole tokens or phrases, case, accents, punctuation and number formatting aside ("1,234" ~
    "1234.0"); golds of one character are ignored. The rule the project always had.
spaced
    digits or letters cut apart by separators, whitespace or line breaks: "7 0 0 6 6 5 2",
    "700\\n6652", "R-e-y-k-j-a-v-i-k". The pieces must be whole (a gold is not found inside a
    longer piece) and, for letters, single characters.
words
    number words turned into digits ("seven million six thousand six hundred fifty-two",
    "seven zero zero six six five two"), by `text2num`, English.
reversed
    the gold backwards ("2566007"), also spaced.
arithmetic
    a literal expression that evaluates exactly to the gold ("7000000 + 6652", "2 × 3503326",
    "(1234)(5678)" is not one: only explicit operators), evaluated with `ast`, never `eval`.
base64, base32, hex
    a run that decodes to printable UTF-8 text, which is then matched with every form again,
    one level of nesting more (base64 of hex of the gold).

A transformed form that the task's own question holds is the task's data, not a leak
(`GoldScan.find(gold, task=...)`): a spell-backward task gives its gold reversed, and the skill
that solved it names that word in its worked example.

Floors: the transformed forms (spaced, words, reversed, arithmetic) only look for a *distinctive*
gold: at least 5 digits or letters, and for a number at least 3 significant digits once leading
and trailing zeros are dropped ("7006652" and "120500" are looked for, "2024", "yes", "10" and
"1000000" are not: "one million" or "20 24" are everyday text). Short golds thus keep exactly the
verbatim rule they had. Decoded text is matched with the same rules: the encoded run itself is
deliberate (no English word decodes to printable text), so a short gold found verbatim inside a
decoded run counts. Encoded runs count from 8 characters (base64 also from 4 with `=` padding).

Cost is linear in the text: a 5 KB skill takes a few milliseconds. Arithmetic is bounded:
expressions are read in windows of at most MAX_OPERATORS operators (and as each `a op b`), at
most MAX_EVALUATIONS operators evaluated a text (`GoldScan.truncated` says a text needed more: the gate
refuses such a skill as one it cannot vet), literals of at most 40 digits, small powers only.
"""

from __future__ import annotations

import ast
import base64
import binascii
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Literal

AnswerKind = Literal["number", "list", "string"]
Form = Literal["verbatim", "spaced", "words", "reversed", "arithmetic", "base64", "base32", "hex"]

# A plain decimal number, as float() would accept it minus the oddities (underscores, nan, inf).
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# Commas that group thousands, so "1,234.5" is one number and "1,2" is a list.
_GROUPED = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_DROPPED_FROM_NUMBERS = str.maketrans("", "", "$%,")
_LIST_SEPARATORS = re.compile(r"[,;]")
# Tokens for leak detection: numbers (thousands groups, decimals, exponents) or runs of letters.
_TOKEN = re.compile(
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\.\d+)|(?P<word>[^\W\d_]+)"
)

HOW: dict[Form, str] = {
    "verbatim": "verbatim",
    "spaced": "with its characters spaced or split",
    "words": "spelled out in words",
    "reversed": "reversed",
    "arithmetic": "as arithmetic",
    "base64": "base64-encoded",
    "base32": "base32-encoded",
    "hex": "hex-encoded",
}
"""Each form in words, for messages (never the gold itself)."""

_GOLDS_CACHED = 100_000
"""What is worked out from a gold alone is kept: a suite's golds are looked up in every file
(docs/decisions.md#gold-match-cache)."""

MIN_DISTINCTIVE = 5
"""Digits or letters a gold needs before its transformed forms are looked for."""
MIN_SIGNIFICANT_DIGITS = 3
MAX_EVALUATIONS = 20_000
"""Operators evaluated per text at most; a text that needs more is reported as truncated."""
MAX_OPERATORS = 64
MAX_DECODED_RUNS = 2_000
TEXT_LIKE = 0.8
"""Share of letters, digits and blanks a decoded run needs to count as text."""
DECODE_DEPTH = 2
"""Decoding levels: a run in the text, and one run inside what it decoded to."""


def parse_number(text: str) -> float | None:
    """The value of `text` as GAIA reads numbers (`$`, `%` and `,` dropped), or None if not one."""
    cleaned = text.translate(_DROPPED_FROM_NUMBERS).strip()
    if not _NUMBER.fullmatch(cleaned):
        return None
    value = float(cleaned)
    return value if math.isfinite(value) else None


def split_list(text: str) -> list[str]:
    """Items of a `,`/`;`-separated answer, as GAIA splits them (empty items are kept)."""
    return _LIST_SEPARATORS.split(text)


def _is_number_gold(gold: str) -> bool:
    core = gold.strip().replace("$", "").replace("%", "").strip()
    if "," in core and not _GROUPED.fullmatch(core):
        return False
    return parse_number(gold) is not None


@lru_cache(maxsize=_GOLDS_CACHED)
def classify(gold: str) -> AnswerKind:
    """How a gold answer is compared: as a number, as a list of items, or as text."""
    if _is_number_gold(gold):
        return "number"
    if _LIST_SEPARATORS.search(gold):
        return "list"
    return "string"


# --- verbatim: tokens and phrases --------------------------------------------------------------


_EXACT = Context(prec=100, Emax=MAX_EMAX, Emin=MIN_EMIN)
"""Our own decimal context: a library that sets the thread's (reasoning-gym sets its precision)
must not change how a number is spelled here."""


def _canonical_number(raw: str) -> str:
    """One spelling per value, so "1,234", "1234" and "1234.0" are the same token."""
    try:
        value = Decimal(raw.replace(",", "")).normalize(_EXACT)
    except ArithmeticError:  # not a number, or an exponent past Decimal's range (1e999999999)
        return raw
    if abs(value.adjusted()) > 40:  # keep "1e999" short instead of printing every digit
        return str(value)
    return format(value, "f")


def _plain(text: str) -> str:
    """Case- and accent-blind text."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return _NON_ASCII.sub(_without_combining, decomposed).casefold()


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _without_combining(m: re.Match[str]) -> str:
    return "".join(c for c in m.group() if not unicodedata.combining(c))


def _tokens(text: str) -> list[str]:
    """Case-, accent- and punctuation-blind tokens; numbers in canonical form, signs dropped."""
    return _tokens_of_plain(_plain(text))


def _tokens_of_plain(plain: str) -> list[str]:
    return [_canonical_number(m["num"]) if m["num"] else m["word"] for m in _TOKEN.finditer(plain)]


def _gold_number(gold: str) -> str:
    return _canonical_number(gold.translate(_DROPPED_FROM_NUMBERS).strip().lstrip("+-"))


@lru_cache(maxsize=_GOLDS_CACHED)
def _phrase(gold: str) -> tuple[str, ...]:
    """The gold as a token sequence; empty when it is too short to be worth looking for."""
    tokens = _tokens(gold)
    if classify(gold) == "number":
        # One token by value: "$1,234.50" is "1234.5", "1e5" is "100000"; the sign is dropped.
        tokens = [_gold_number(gold)]
    if not tokens or (len(tokens) == 1 and len(tokens[0]) <= 1):
        return ()
    return tuple(tokens)


def contains_gold(text: str, gold: str, *, partial: bool = False) -> bool:
    """Whether `text` states `gold` verbatim: as a whole token or phrase, formatting aside.

    Numbers match by value ("1,234" ~ "1234" ~ "1234.0"); golds of a single character (a digit,
    a letter) never match. A list gold counts as present when the whole list appears or every
    item does; with `partial=True`, when any non-trivial item does (use that where even part of
    the gold must not leak, such as a critique handed to the next attempt). For the other forms
    a gold can be smuggled in, see `find_gold`.
    """
    if not text or not gold:
        return False
    return _verbatim(_padded(_tokens(text)), gold, partial=partial)


def _padded(tokens: Iterable[str]) -> str:
    # Tokens never contain spaces, so a padded join keeps matches on token boundaries.
    return f" {' '.join(tokens)} "


def _in(padded: str, phrase: tuple[str, ...]) -> bool:
    return bool(phrase) and _padded(phrase) in padded


def _verbatim(padded: str, gold: str, *, partial: bool = False) -> bool:
    if _in(padded, _phrase(gold)):
        return True
    if classify(gold) != "list":
        return False
    items = [p for p in (_phrase(item) for item in split_list(gold)) if p]
    if not items:
        return False
    found = [_in(padded, item) for item in items]
    return any(found) if partial else all(found)


# --- the other forms ---------------------------------------------------------------------------

_SEPARATOR = r"[\W_]{1,4}"
_DIGIT_RUN = re.compile(rf"\d+(?:{_SEPARATOR}\d+)+")
_LETTER_RUN = re.compile(rf"(?<![^\W\d_])[^\W\d_](?:{_SEPARATOR}[^\W\d_](?![^\W\d_]))+")
_DIGITS = re.compile(r"\d+")
_LETTERS = re.compile(r"[^\W\d_]")

_LITERAL = r"\d{1,40}(?:\.\d{1,40})?"
_OPERATOR = r"(?:\*\*|//|[-+*/×÷^%·]|(?<=[ \t])x(?=[ \t]))"
# Possessive quantifiers: a run of blanks is read once, never backtracked into.
_OPEN, _CLOSE = r"[(\[ \t]*+", r"[)\] \t]*+"
# An expression starts at a literal (its opening brackets are taken back from the text before
# it), so a long run of brackets or blanks is never read again from every position in it.
_EXPRESSION = re.compile(rf"{_LITERAL}{_CLOSE}(?:{_OPERATOR}{_OPEN}{_LITERAL}{_CLOSE})++")
_OPENING = re.compile(r"[(\[ \t]{0,64}$")
_OPERATOR_FINDER = re.compile(_OPERATOR)
_OPERATOR_SPELLING = str.maketrans({"×": "*", "÷": "/", "^": "**", "·": "*", "[": "(", "]": ")"})
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")

_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{4,}={0,2}(?![A-Za-z0-9+/=_-])")
_BASE32_RUN = re.compile(r"(?<![A-Za-z0-9])[A-Z2-7]{8,}={0,6}(?![A-Za-z0-9=])")
_HEX_RUN = re.compile(r"(?<![0-9A-Za-z])(?:0x)?((?:[0-9A-Fa-f]{2}){4,})(?![0-9A-Za-z])")
_MIN_ENCODED = 8
_LONE_POINT = re.compile(r"(?<!\d)\.|\.(?!\d)")


@lru_cache(maxsize=_GOLDS_CACHED)
def _core(gold: str) -> str:
    """The characters of a gold that carry it: its digits, or its letters and digits."""
    if classify(gold) == "number":
        return _gold_number(gold).replace(".", "")
    return "".join(c for c in _plain(gold) if c.isalnum())


@lru_cache(maxsize=_GOLDS_CACHED)
def distinctive(gold: str) -> bool:
    """Whether `gold` is long and varied enough for its transformed forms to be looked for."""
    core = _core(gold)
    if len(core) < MIN_DISTINCTIVE:
        return False
    if classify(gold) == "number":
        return len(core.strip("0")) >= MIN_SIGNIFICANT_DIGITS
    return len(set(core)) >= MIN_SIGNIFICANT_DIGITS


@dataclass
class _Runs:
    """Pieces cut apart by separators, joined, with the offsets where pieces meet."""

    joined: list[tuple[str, frozenset[int]]] = field(default_factory=list)

    @classmethod
    def of(cls, plain: str, run: re.Pattern[str], piece: re.Pattern[str]) -> _Runs:
        found = cls()
        for m in run.finditer(plain):
            pieces = piece.findall(m.group())
            bounds, at = {0}, 0
            for p in pieces:
                at += len(p)
                bounds.add(at)
            found.joined.append(("".join(pieces), frozenset(bounds)))
        return found

    def has(self, core: str) -> bool:
        """`core` made of two or more whole pieces of one run."""
        for joined, bounds in self.joined:
            start = joined.find(core)
            while start != -1:
                end = start + len(core)
                if start in bounds and end in bounds and any(start < b < end for b in bounds):
                    return True
                start = joined.find(core, start + 1)
        return False


class _Reading:
    """One reading of a text (as written, reversed, number words as digits) and its views."""

    def __init__(self, plain: str) -> None:
        self.padded = _padded(_tokens_of_plain(plain))
        self.digits = _Runs.of(plain, _DIGIT_RUN, _DIGITS)
        self.letters = _Runs.of(plain, _LETTER_RUN, _LETTERS)

    def spaced(self, gold: str) -> bool:
        core = _core(gold)
        runs = self.digits if classify(gold) == "number" else self.letters
        return runs.has(core)


def _number_words(text: str) -> str:
    from text_to_num import alpha2digit

    try:
        return str(alpha2digit(text, "en"))
    except Exception:  # a converter failure must not let a text through unread, nor crash
        return text


def _arithmetic_values(text: str) -> tuple[set[Fraction], bool]:
    """Values of the literal expressions in `text`, and whether the budget cut the work short."""
    values: set[Fraction] = set()
    budget = MAX_EVALUATIONS
    source = _THOUSANDS_COMMA.sub("", text)
    for m in _EXPRESSION.finditer(source):
        opening = _OPENING.search(source, max(0, m.start() - 64), m.start())
        span = (opening.group() if opening else "") + m.group()
        operators = len(_OPERATOR_FINDER.findall(span))
        budget -= min(operators, MAX_OPERATORS) * (1 + operators // MAX_OPERATORS)
        budget -= operators if operators > 1 else 0  # its pairs
        if budget < 0:
            return values, True
        values.update(v for v in map(_evaluate, _windows(span)) if v is not None)
        values.update(v for v in _pairs(span) if v is not None)
    return values, False


_PAIR = re.compile(rf"(?=(?<![\d.])({_LITERAL})[ \t]*+({_OPERATOR})[ \t]*+({_LITERAL})(?![\d.]))")


def _pairs(span: str) -> Iterator[Fraction | None]:
    """Each `a op b` inside a longer span, so padding ("0 + 7000000 + 6652 - 0") hides nothing."""
    if len(_OPERATOR_FINDER.findall(span)) < 2:
        return
    for m in _PAIR.finditer(span):
        yield _apply(m.group(2), Fraction(m.group(1)), Fraction(m.group(3)))


def _apply(operator: str, left: Fraction, right: Fraction) -> Fraction | None:
    try:
        if operator == "+":
            return left + right
        if operator == "-":
            return left - right
        if operator in ("*", "×", "·", "x"):
            return left * right
        if operator in ("/", "÷"):
            return left / right
        if operator == "//":
            return Fraction(left // right)
        if operator == "%":
            return left % right
        return _power(left, right)  # ** or ^
    except ZeroDivisionError:
        return None


def _windows(expression: str) -> Iterable[str]:
    """The expression, or overlapping pieces of it of at most MAX_OPERATORS operators."""
    parts = re.split(f"({_OPERATOR})", expression)
    operators = (len(parts) - 1) // 2
    if operators <= MAX_OPERATORS:
        yield expression
        return
    step = MAX_OPERATORS // 2
    for first in range(0, operators, step):
        yield "".join(parts[2 * first : 2 * (first + MAX_OPERATORS) + 1]).strip("+-*/×÷^%·x \t")


def _balanced(expression: str) -> str:
    """Drop the unmatched brackets a span picked up at its edges."""
    text = expression.translate(_OPERATOR_SPELLING).strip()
    text = re.sub(r"(?<=[\d)\s])x(?=[\s(\d])", "*", text)
    while text.count("(") > text.count(")") and text.startswith("("):
        text = text[1:].lstrip()
    while text.count(")") > text.count("(") and text.endswith(")"):
        text = text[:-1].rstrip()
    return text


def _evaluate(expression: str) -> Fraction | None:
    try:
        tree = ast.parse(_balanced(expression), mode="eval")
        return _value(tree.body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None


def _value(node: ast.expr) -> Fraction | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return Fraction(str(node.value)) if isinstance(node.value, float) else Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _value(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if not isinstance(node, ast.BinOp):
        return None
    left, right = _value(node.left), _value(node.right)
    if left is None or right is None:
        return None
    symbol = _AST_OPERATORS.get(type(node.op))
    return None if symbol is None else _apply(symbol, left, right)


_AST_OPERATORS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}


def _power(base: Fraction, exponent: Fraction) -> Fraction | None:
    if exponent.denominator != 1 or abs(exponent) > 64:
        return None
    size = max(abs(base.numerator).bit_length(), base.denominator.bit_length())
    if size * abs(int(exponent)) > 4096:
        return None
    return base ** int(exponent)


def _decode(run: str, kind: str) -> str | None:
    """The printable text an encoded run stands for, or None."""
    try:
        if kind == "hex":
            raw = binascii.unhexlify(run)
        elif kind == "base32":
            raw = base64.b32decode(run + "=" * (-len(run.rstrip("=")) % 8 if "=" not in run else 0))
        else:
            body = run.rstrip("=")
            if len(body) % 4 == 1:
                return None
            padded = body + "=" * (-len(body) % 4)
            altchars = b"-_" if ("-" in body or "_" in body) else None
            raw = base64.b64decode(padded, altchars=altchars, validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    if not text.strip() or not all(c.isprintable() or c in "\n\r\t" for c in text):
        return None
    # Random bytes that happen to be printable are mostly punctuation; words and numbers are not.
    plain = sum(c.isalnum() or c.isspace() for c in text)
    return text if plain >= TEXT_LIKE * len(text) else None


def _encoded_runs(text: str) -> Iterable[tuple[Form, str]]:
    for m in _BASE64_RUN.finditer(text):
        run = m.group()
        if len(run) >= _MIN_ENCODED or run.endswith("="):
            yield "base64", run
    for m in _BASE32_RUN.finditer(text):
        yield "base32", m.group()
    for m in _HEX_RUN.finditer(text):
        yield "hex", m.group(1)


class GoldScan:
    """A text prepared once for looking many golds up in it (a file against a whole suite)."""

    def __init__(self, text: str, *, depth: int = DECODE_DEPTH) -> None:
        plain = _plain(text)
        self.as_written = _Reading(plain)
        # Backwards, a sentence's full stop leads the number: ".7006652" is not 0.7006652 here.
        self.reversed = _Reading(_LONE_POINT.sub(" ", plain[::-1]))
        converted = _number_words(text)
        self.words = _Reading(_plain(converted)) if converted != text else None
        self.values, self.truncated = _arithmetic_values(text)
        if self.words is not None:
            more, cut = _arithmetic_values(converted)
            self.values |= more
            self.truncated |= cut
        self.decoded: list[tuple[Form, GoldScan]] = []
        if depth > 0:
            seen: set[str] = set()
            for kind, run in _encoded_runs(text):
                if len(self.decoded) >= MAX_DECODED_RUNS:
                    self.truncated = True
                    break
                decoded = _decode(run, kind)
                if decoded is not None and decoded not in seen:
                    seen.add(decoded)
                    self.decoded.append((kind, GoldScan(decoded, depth=depth - 1)))

    def find(self, gold: str, *, task: str | None = None) -> Form | None:
        """The form in which the text gives `gold` away, or None.

        With `task` (the question the gold answers), a transformed form that the question
        itself holds is not counted: the word a spell-backward task gives is its gold reversed,
        and a skill repeating it tells nothing the task does not. Verbatim always counts."""
        if not gold or not gold.strip():
            return None
        if _verbatim(self.as_written.padded, gold):
            return "verbatim"
        if distinctive(gold):
            given = GoldScan(task, depth=0)._given(gold) if task else frozenset()
            form = self._transformed(gold, given)
            if form is not None:
                return form
        for kind, inner in self.decoded:
            if inner.find(gold, task=task) is not None:
                return kind
        return None

    def _given(self, gold: str) -> frozenset[Form]:
        """The transformed forms of `gold` this text holds."""
        held: set[Form] = set()
        while (form := self._transformed(gold, frozenset(held))) is not None:
            held.add(form)
        return frozenset(held)

    def _transformed(self, gold: str, skip: frozenset[Form] = frozenset()) -> Form | None:
        if "spaced" not in skip and self.as_written.spaced(gold):
            return "spaced"
        phrase = _phrase(gold)
        if (
            "words" not in skip
            and self.words is not None
            and (_in(self.words.padded, phrase) or self.words.spaced(gold))
        ):
            return "words"
        if "reversed" not in skip and (
            _in(self.reversed.padded, phrase) or self.reversed.spaced(gold)
        ):
            return "reversed"
        if "arithmetic" not in skip and classify(gold) == "number" and self.values:
            target = _value_of(gold)
            if target is not None and (target in self.values or -target in self.values):
                return "arithmetic"
        return None


@lru_cache(maxsize=_GOLDS_CACHED)
def _value_of(gold: str) -> Fraction | None:
    """The gold's exact value; None when it is not finite or too large to compare cheaply."""
    try:
        value = Decimal(_gold_number(gold))
    except ArithmeticError:
        return None
    if not value.is_finite() or abs(value.adjusted()) > 40:
        return None
    return Fraction(value)


def find_gold(text: str, gold: str) -> Form | None:
    """The form in which `text` gives `gold` away (see the module's list), or None."""
    if not text or not gold:
        return None
    return GoldScan(text).find(gold)


def gives_away(text: str, golds: Iterable[str]) -> bool:
    """Whether `text` gives away any of `golds`, in any form."""
    wanted = [g for g in golds if g]
    if not text or not wanted:
        return False
    scan = GoldScan(text)
    return any(scan.find(g) is not None for g in wanted)
