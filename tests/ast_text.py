"""AST to .ssn text, for generated test programs: parsing the output gives back the same AST
(spans aside). Operands that are not atoms are parenthesised; `ssnc fmt` makes it readable."""

from __future__ import annotations

from ssnc.grammar import ast
from ssnc.grammar.format import quote

_ATOMIC = (ast.Number, ast.String, ast.Bool, ast.NoneLit, ast.Name, ast.ListLit,
           ast.TupleLit, ast.ListComp, ast.Call, ast.Index)


def format_program(program: ast.Program) -> str:
    """The whole file, one item per paragraph."""
    return "\n\n".join(format_item(i) for i in program.items) + "\n"


def format_item(item: ast.Item) -> str:
    """One import, def or model."""
    if isinstance(item, ast.Import):
        return f"import {quote(item.path)}"
    params = _params(item.params)
    if isinstance(item, ast.Def):
        return f"def {item.name}{params} = {format_expr(item.body)}"
    inputs = ", ".join((f"{i.name}: " if i.name is not None else "")
                       + f"{i.type.name}[{', '.join(format_expr(a) for a in i.type.args)}]"
                       for i in item.inputs)
    return f"model {item.name}{params} : {inputs} = {format_expr(item.body)}"


def _params(params: tuple[ast.Param, ...]) -> str:
    if not params:
        return ""
    return "(" + ", ".join(p.name if p.default is None else f"{p.name} = {format_expr(p.default)}"
                           for p in params) + ")"


def _operand(e: ast.Expr) -> str:
    text = format_expr(e)
    return text if isinstance(e, _ATOMIC) else f"({text})"


def format_expr(e: ast.Expr) -> str:
    """One expression; operands that are not atoms are parenthesised."""
    if isinstance(e, ast.Number):
        return "1e999" if e.value == float("inf") else repr(e.value)
    if isinstance(e, ast.String):
        return quote(e.value)
    if isinstance(e, ast.Bool):
        return "true" if e.value else "false"
    if isinstance(e, ast.NoneLit):
        return "none"
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.ListLit):
        return "[" + ", ".join(format_expr(x) for x in e.items) + "]"
    if isinstance(e, ast.TupleLit):
        inner = ", ".join(format_expr(x) for x in e.items)
        return f"({inner},)" if len(e.items) == 1 else f"({inner})"
    if isinstance(e, ast.ListComp):
        clauses = ""
        for c in e.clauses:
            target = c.targets[0] if not c.destructure else f"({', '.join(c.targets)})"
            cond = f" if {_operand(c.cond)}" if c.cond is not None else ""
            clauses += f" for {target} in {_operand(c.iter)}{cond}"
        return f"[{format_expr(e.elt)}{clauses}]"
    if isinstance(e, ast.Call):
        args = [format_expr(a) for a in e.args]
        args += [f"{k.name} = {format_expr(k.value)}" for k in e.kwargs]
        return f"{_operand(e.func)}({', '.join(args)})"
    if isinstance(e, ast.Index):
        return f"{_operand(e.obj)}[{format_expr(e.index)}]"
    if isinstance(e, ast.BinOp | ast.Compare | ast.BoolOp):
        return f"{_operand(e.left)} {e.op} {_operand(e.right)}"
    if isinstance(e, ast.Repeat):
        return f"{_operand(e.body)} x{e.count}"
    if isinstance(e, ast.Not):
        return f"not {_operand(e.operand)}"
    if isinstance(e, ast.Neg):
        return f"-{_operand(e.operand)}"
    if isinstance(e, ast.If):
        return (f"if {format_expr(e.cond)} then {format_expr(e.then)} "
                f"else {format_expr(e.orelse)}")
    if isinstance(e, ast.Let):
        target = f"({', '.join(e.targets)})" if e.destructure else e.targets[0]
        return f"let {target} = {format_expr(e.value)} in {format_expr(e.body)}"
    if isinstance(e, ast.Lambda):
        names = [*e.params[:-1], "*" + e.params[-1]] if e.rest else list(e.params)
        return f"({', '.join(names)}) => {format_expr(e.body)}"
    raise AssertionError(f"unknown expression {type(e).__name__}")
