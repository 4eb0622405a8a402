"""Fuzz cases for the front end: specs generated from the grammar, and mutations of the
shipped specs and the standard library. Deterministic for a seed."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEEDS = sorted([*ROOT.glob("specs/*.ssn"), *ROOT.glob("compiler/stdlib/*.ssn")])

OPS = ["conv", "bn", "relu", "sigmoid", "tanh", "softmax", "identity", "dropout", "maxpool",
       "avgpool", "gap", "flatten", "linear", "embedding", "mean", "sum", "max", "concat",
       "mul", "sub", "affine", "hard_sigmoid", "step", "slice", "zeros", "layernorm",
       "reshape"]
BUILTINS = ["range", "len", "zip", "enumerate", "seq", "shared", "repeat", "fail", "min",
            "abs", "int", "float", "round", "scan", "outputs"]
RULES = ["fractal", "fractal_pooled", "mlpconv", "nin", "conv3x3", "conv_bn_relu", "residual",
         "unrolled", "rir_layer", "hmrnn", "rnn", "lstm", "hornn", "hm_state", "hm_cell"]
LOCALS = ["a", "b", "w", "n", "x", "y", "k", "C", "f", "g"]
HOSTILE = ["9 ** 9 ** 9", "10 ** 20", "9" * 30, "9" * 4301, "-0", "1e999", "0.0", "-1",
           '"x\\"\\"\\"; print(1) #"', '"\\\\"', "x999999999", "× 0", "range(10 ** 20)",
           "[[i for i in range(100000)] for j in range(100000)]", "none", "true", "()",
           "(x) => x", "((identity x1000) x1000) x1000", "shared(relu)", "fail(\"no\")",
           "\u2028", "\x00", "\ufeff", "$", "`", "\\", "'''", "def", "model", "import",
           "(x, *s) => s", "scan(relu, state = [3])", "outputs(a = 1)", "(*s) => s[0]",
           "scan((x, *s) => (x,) + s, state = range(9))", "hmrnn(layers = 0)"]
TYPES = ["tensor[3, 8, 8]", "tensor[1, 4, 4]", "tokens[16]", "sequence[8]", "tensor[0]",
         "tensor[3]", "image[3, 8, 8]", "tensor[-1, 2]"]


class Grammar:
    """Random well-formed-ish specs: most parse, many elaborate, some hit every limit."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def number(self) -> str:
        r = self.rng.random()
        if r < 0.05:
            return self.rng.choice(HOSTILE[:8])
        if r < 0.3:
            return f"{self.rng.uniform(0, 2):.2f}"
        return str(self.rng.choice([0, 1, 2, 3, 4, 8, 16, 32, 64, -1, 5]))

    def expr(self, depth: int) -> str:
        rng = self.rng
        if depth <= 0 or rng.random() < 0.25:
            choice = rng.random()
            if choice < 0.3:
                return self.number()
            if choice < 0.75:
                return rng.choice(OPS + LOCALS + RULES + BUILTINS)
            if choice < 0.8:
                return '"' + rng.choice(["a", "mean", "x\\\"y", ""]) + '"'
            return rng.choice(HOSTILE) if rng.random() < 0.3 else rng.choice(OPS)
        d = depth - 1
        form = rng.randrange(12)
        if form == 0:
            return f"{self.expr(d)} >> {self.expr(d)}"
        if form == 1:
            args = ", ".join(self.arg(d) for _ in range(rng.randrange(4)))
            return f"{rng.choice(OPS + RULES + BUILTINS + LOCALS)}({args})"
        if form == 2:
            return f"{self.expr(d)} {rng.choice(['+', '-', '*', '/', '//', '%', '**', '×'])} " \
                   f"{self.expr(d)}"
        if form == 3:
            return "[" + ", ".join(self.expr(d) for _ in range(rng.randrange(4))) + "]"
        if form == 4:
            return f"[{self.expr(d)} for {rng.choice(LOCALS)} in {self.expr(d)}]"
        if form == 5:
            return f"if {self.expr(d)} {rng.choice(['==', '<', '>=', '!='])} {self.expr(d)} " \
                   f"then {self.expr(d)} else {self.expr(d)}"
        if form == 6:
            return f"let {rng.choice(LOCALS)} = {self.expr(d)} in {self.expr(d)}"
        if form == 7:
            return f"({rng.choice(['x', 'y'])}) => {self.expr(d)}"
        if form == 8:
            return f"{self.expr(d)} x{rng.choice([0, 1, 2, 3, 1000, 999999999])}"
        if form == 9:
            return f"({self.expr(d)})"
        if form == 10 and rng.random() < 0.2:  # deep text is slow to parse: keep it rare
            deep = rng.choice([10, 100, 1000, 5000])
            return "abs(" * deep + "1" + ")" * deep if rng.random() < 0.5 else \
                " >> ".join(["relu"] * deep)
        return f"{self.expr(d)}[{self.expr(d)}]"

    def arg(self, depth: int) -> str:
        if self.rng.random() < 0.3:
            return f"{self.rng.choice(['k', 'w', 'p', 'drop_path', 'join', 'bias', 'C'])} = " \
                   f"{self.expr(depth)}"
        return self.expr(depth)

    def params(self) -> str:
        names = self.rng.sample(LOCALS, self.rng.randrange(4))
        if not names:
            return ""
        return "(" + ", ".join(n if self.rng.random() < 0.4 else f"{n} = {self.expr(1)}"
                               for n in names) + ")"

    def spec(self) -> str:
        lines = []
        for i in range(self.rng.randrange(4)):
            name = self.rng.choice([f"r{i}", *RULES, "relu", "none"]) \
                if self.rng.random() < 0.2 else f"r{i}"
            lines.append(f"def {name}{self.params()} = {self.expr(4)}")
        body = self.expr(4)
        if self.rng.random() < 0.6:
            body = f"conv(4) >> {body} >> gap >> linear(3)"
        lines.append(f"model m{self.params()} : {self.rng.choice(TYPES)} = {body}")
        return "\n".join(lines) + "\n"


class Valid:
    """Random specs built from working blocks, so that most elaborate and reach the backends."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def block(self, depth: int) -> str:
        rng = self.rng
        w = rng.choice([2, 3, 4, 8])
        leaves = [f"conv({w}, {rng.choice([1, 3])})", "bn", "relu", "sigmoid", "tanh",
                  f"dropout({rng.choice([0.0, 0.1, 0.5])})", f"conv3x3({w})",
                  f"conv_bn_relu({w}, 1)", f"mlpconv({w}, 1, [{w}])", "identity"]
        if depth <= 0 or rng.random() < 0.3:
            return rng.choice(leaves)
        d = depth - 1
        form = rng.randrange(8)
        if form == 0:
            return f"{self.block(d)} >> {self.block(d)}"
        if form == 1:
            return f"fractal({rng.randrange(1, 4)}, {self.block(d)}, " \
                   f"join = {rng.choice(['mean', 'sum', 'max'])}, drop_path = 0.1)"
        if form == 2:
            return f"residual(conv({w}, 3) >> relu >> conv({w}, 3)) >> relu" \
                if rng.random() < 0.5 else f"{rng.choice(['mean', 'sum', 'max'])}(" \
                f"conv({w}, 1), conv({w}, 3), {self.block(d)} >> conv({w}, 1))"
        if form == 3:
            return f"shared(conv({w}, 3) >> relu) x{rng.randrange(1, 4)}"
        if form == 4:
            return f"(x) => relu(x + conv({w}, 3)(x))" if rng.random() < 0.5 else \
                f"concat({self.block(d)}, {self.block(d)})"
        if form == 5:
            return f"seq([conv(c, 1) >> relu for c in [{w}, {w * 2}]])"
        if form == 6:
            return f"unrolled(conv({w}, 3) >> bn, {rng.randrange(1, 3)})"
        return f"({self.block(d)}) x{rng.randrange(0, 3)}"

    def recurrent(self) -> str:
        """A sequence model from the recurrent blocks, sometimes with named outputs."""
        rng = self.rng
        w = rng.choice([2, 3, 4])
        parts = [f"lstm({w})", f"rnn({w})", f"hornn({rng.randrange(1, 4)}, {w})",
                 f"lstm({w}, reverse = true)", "layernorm",
                 f"hmrnn(layers = {rng.randrange(1, 4)}, dim = {w}, out_dim = {w}, "
                 f"layer_norm = {rng.choice(['true', 'false'])})",
                 f"scan((x, h) => (x * 0.5 + h, h - x), state = [{w}])"]
        body = " >> ".join(rng.choice(parts) for _ in range(rng.randrange(1, 4)))
        head = "linear(3)" if rng.random() < 0.5 else \
            "((h) => outputs(a = linear(3)(h), b = step(hard_sigmoid(h))))"
        return f"model m : sequence[{w}] = linear({w}) >> {body} >> {head}\n"

    def spec(self) -> str:
        if self.rng.random() < 0.25:
            return self.recurrent()
        body = " >> ".join(self.block(3) for _ in range(self.rng.randrange(1, 3)))
        return (f"def blk(w = 4) = conv(w, 3) >> relu\n"
                f"model m(classes = 3) : tensor[{self.rng.choice([1, 3])}, 8, 8] =\n"
                f"    conv(4, 3) >> blk >> {body} >> gap >> linear(classes)\n")


_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|[0-9.]+(?:[eE][+-]?[0-9]+)?'
                    r"|>>|\*\*|==|!=|<=|>=|=>|//|\s+|#[^\n]*|.", re.S)


def mutate(text: str, rng: random.Random, donors: list[str]) -> str:
    """A shipped spec with a few token-level mutations."""
    tokens = _TOKEN.findall(text)
    pool = [t for d in donors for t in _TOKEN.findall(d) if not t.isspace()]
    for _ in range(rng.randrange(1, 6)):
        if not tokens:
            break
        i = rng.randrange(len(tokens))
        action = rng.randrange(7)
        if action == 0:
            del tokens[i]
        elif action == 1:
            tokens.insert(i, tokens[i])
        elif action == 2:
            j = rng.randrange(len(tokens))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif action == 3 and tokens[i][:1].isdigit():
            tokens[i] = rng.choice([*HOSTILE[:8], "0", "1", "100000", "999999999"])
        elif action == 4:
            tokens.insert(i, " " + rng.choice(pool + HOSTILE) + " ")
        elif action == 5:
            tokens = tokens[:i]
        else:
            j = rng.randrange(len(tokens))
            tokens[i:i] = tokens[j:j + rng.randrange(1, 20)]
    return "".join(tokens)


def cases(seed: int, count: int) -> Iterator[tuple[str, str]]:
    """(kind, text) pairs: 30 % generated from the grammar, 30 % built from working blocks,
    40 % mutated shipped specs."""
    rng = random.Random(seed)
    texts = [p.read_text(encoding="utf-8") for p in SEEDS]
    grammar, valid = Grammar(rng), Valid(rng)
    for _ in range(count):
        r = rng.random()
        if r < 0.3:
            yield "generated", grammar.spec()
        elif r < 0.6:
            yield "valid", valid.spec()
        else:
            yield "mutated", mutate(rng.choice(texts), rng, texts)
