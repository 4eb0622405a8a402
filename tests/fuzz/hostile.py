"""The hostile specs of the hardening issue, one per bug class: each must end in its limit
diagnostic within a second and 500 MB (tests/test_limits.py checks the codes with hang
guards; bench/bench_limits.py measures the time and memory)."""

from __future__ import annotations

TAIL = " : tensor[3, 8, 8] = conv(4) >> gap >> linear(2)"

# (name, spec text, expected code; "" = refused only when weights are made, E0404)
HOSTILE: list[tuple[str, str, str]] = [
    ("integer tower", "model m(a = 9 ** 9 ** 9)" + TAIL, "E0404"),
    ("product overflow", "model m(a = 3037000500 * 3037000500)" + TAIL, "E0404"),
    ("4301-digit literal", "model m(a = " + "9" * 4301 + ")" + TAIL, "E0404"),
    ("literal above 2**63", "model m : tensor[3, 8, 8] = conv(9223372036854775808)", "E0404"),
    ("huge dropout", "model m : tensor[3, 8, 8] = dropout(" + "9" * 25 + ")", "E0404"),
    ("huge mean", "model m(a = mean(" + "9" * 25 + ", 1))" + TAIL, "E0404"),
    ("range 10**20", "model m(a = range(10 ** 20))" + TAIL, "E0404"),
    ("blocks without nodes", "model m : tensor[3, 8, 8] = ((identity x1000) x1000) x1000",
     "E0403"),
    ("relu x999999999", "model m : tensor[3, 8, 8] = relu x999999999", "E0403"),
    ("nested comprehensions",
     "model m(a = [[i * j for j in range(100000)] for i in range(100000)])" + TAIL, "E0405"),
    ("several for clauses",
     "model m(a = [i * j for i in range(100000) for j in range(100000)])" + TAIL, "E0405"),
    ("list doubled by recursion",
     "def f(n, l) = if n == 0 then l else f(n - 1, l + l)\n"
     "model m(a = len(f(60, [1])))" + TAIL, "E0404"),
    ("nesting beyond the limit",
     "model m(a = " + "abs(" * 13000 + "1" + ")" * 13000 + ")" + TAIL, "E0406"),
    ("nesting without brackets", "model m(a = " + "not " * 13000 + "true)" + TAIL, "E0406"),
    ("huge padding", "model m : tensor[3, 8, 8] = conv(4, 3, pad = 9223372036854775807)",
     "E0404"),
    ("huge weights", "model m : tensor[3, 8, 8] = gap >> linear(9223372036854775807)", ""),
]

