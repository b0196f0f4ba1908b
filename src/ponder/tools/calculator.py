"""The ``calculator`` built-in tool: exact arithmetic, with no code execution.

The expression is parsed with :mod:`ast` and walked here; nothing is ever compiled or
evaluated by Python. Only number literals, ``+ - * / // % **``, unary ``+``/``-``,
parentheses, the functions in :data:`FUNCTIONS` and the constants ``pi`` and ``e`` are
allowed; anything else (a name, an attribute, a call of anything else, a comparison) is an
error the model sees. Numbers are :class:`fractions.Fraction`, so ``0.1 + 0.2`` is ``3/10``
exactly; a value that cannot be exact (a square root of a non-square, a fractional power,
``pi``) is computed with :mod:`decimal` to :data:`DIGITS` digits and the answer says it is
approximate.

A hostile model may send ``9**9**9`` or ``1e999999999``: every literal's exponent, every
power's size and every intermediate value is bounded *before* it is computed
(:data:`MAX_BITS`), the expression's length and node count are bounded, and Python's own
parser refuses deep nesting, so no expression takes long or takes much memory.
"""

from __future__ import annotations

import ast
import decimal
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ponder.tools.base import ToolResult

MAX_LENGTH = 1000  # characters of an expression
MAX_NODES = 400  # AST nodes of an expression
MAX_BITS = 100_000  # of any numerator or denominator, intermediate values included
MAX_LITERAL_EXPONENT = 1000  # the e in a literal like 1e5
DIGITS = 50  # precision of what cannot be exact
MAX_DIGITS_SHOWN = 1000  # an exact value longer than this is shown rounded

_LITERAL = re.compile(r"(?P<mantissa>\d*\.?\d*)(?:[eE](?P<exponent>[+-]?\d+))?")


class CalcError(ValueError):
    """A failure the model should see (never a failure of Ponder's)."""


@dataclass(frozen=True, slots=True)
class Value:
    number: Fraction
    exact: bool = True


def _checked(number: Fraction, exact: bool = True) -> Value:
    if max(number.numerator.bit_length(), number.denominator.bit_length()) > MAX_BITS:
        raise CalcError(f"a value is too large (over {MAX_BITS} bits)")
    return Value(number, exact)


def _decimal(number: Fraction) -> decimal.Decimal:
    return decimal.Decimal(number.numerator) / decimal.Decimal(number.denominator)


def _approx(compute: Callable[[], decimal.Decimal]) -> Value:
    with decimal.localcontext() as ctx:
        ctx.prec = DIGITS
        try:
            return _checked(Fraction(compute()), exact=False)
        except (decimal.InvalidOperation, ArithmeticError) as exc:
            raise CalcError(f"cannot compute: {exc!s}") from None


def _sqrt(x: Value) -> Value:
    n = x.number
    if n < 0:
        raise CalcError("sqrt of a negative number")
    p, q = math.isqrt(n.numerator), math.isqrt(n.denominator)
    if p * p == n.numerator and q * q == n.denominator:
        return Value(Fraction(p, q), x.exact)
    return _approx(lambda: _decimal(n).sqrt())


def _power(base: Value, exponent: Value) -> Value:
    b, p = base.number, exponent.number
    exact = base.exact and exponent.exact
    if p.denominator != 1:
        if b < 0:
            raise CalcError("a fractional power of a negative number")
        if b == 0:
            return Value(Fraction(0), exact)
        # log2 of the base from its bit lengths (a float of a huge base would overflow).
        magnitude = abs(b.numerator.bit_length() - b.denominator.bit_length()) + 1
        if magnitude * abs(p) > MAX_BITS:
            raise CalcError(f"the power is too large (over {MAX_BITS} bits)")
        return _approx(lambda: _decimal(b) ** _decimal(p))
    n = p.numerator
    if b == 0 and n < 0:
        raise CalcError("division by zero (0 to a negative power)")
    if b in (0, 1):
        return Value(b, exact)
    if b == -1:
        return Value(Fraction(1 if n % 2 == 0 else -1), exact)
    # The result's size, known before computing it: refuse 9**9**9 instead of trying.
    size = max(b.numerator.bit_length(), b.denominator.bit_length()) * abs(n)
    if size > MAX_BITS:
        raise CalcError(f"the power is too large (over {MAX_BITS} bits)")
    return _checked(b**n, exact)


def _round(x: Value, digits: Value | None = None) -> Value:
    if digits is None:
        return Value(Fraction(round(x.number)), x.exact)
    if digits.number.denominator != 1 or abs(digits.number) > DIGITS * 10:
        raise CalcError("round's digits must be a small integer")
    return _checked(round(x.number, int(digits.number)), x.exact)


def _one(name: str, f: Callable[[Value], Value]) -> Callable[..., Value]:
    def call(*args: Value) -> Value:
        if len(args) != 1:
            raise CalcError(f"{name} takes one argument")
        return f(args[0])

    return call


def _rounding(*args: Value) -> Value:
    if len(args) not in (1, 2):
        raise CalcError("round takes one or two arguments")
    return _round(*args)


def _extreme(pick: Callable[..., Fraction]) -> Callable[..., Value]:
    def call(*args: Value) -> Value:
        if not args:
            raise CalcError("min and max need at least one argument")
        best = pick(a.number for a in args)
        return Value(best, all(a.exact for a in args))

    return call


FUNCTIONS: Mapping[str, Callable[..., Value]] = {
    "sqrt": _one("sqrt", _sqrt),
    "abs": _one("abs", lambda x: Value(abs(x.number), x.exact)),
    "floor": _one("floor", lambda x: Value(Fraction(math.floor(x.number)), x.exact)),
    "ceil": _one("ceil", lambda x: Value(Fraction(math.ceil(x.number)), x.exact)),
    "round": _rounding,
    "min": _extreme(min),
    "max": _extreme(max),
}
_PI = "3.1415926535897932384626433832795028841971693993751"
_E = "2.7182818284590452353602874713526624977572470936999"
CONSTANTS: Mapping[str, Value] = {
    "pi": Value(Fraction(_PI), exact=False),
    "e": Value(Fraction(_E), exact=False),
}


def _literal(node: ast.Constant, source: str) -> Value:
    if isinstance(node.value, bool) or not isinstance(node.value, int | float):
        raise CalcError(f"only numbers are allowed, not {type(node.value).__name__}")
    # Read from the source text: the float 0.1 is not one tenth, the literal "0.1" is.
    text = (ast.get_source_segment(source, node) or str(node.value)).replace("_", "")
    if text[:2].lower() in ("0x", "0o", "0b"):
        return _checked(Fraction(int(text, 0)))
    match = _LITERAL.fullmatch(text)
    if match is None or match.group("mantissa") in ("", "."):
        raise CalcError(f"not a number: {text!r}")
    exponent = match.group("exponent")
    if exponent is not None and abs(int(exponent)) > MAX_LITERAL_EXPONENT:
        raise CalcError(f"the literal {text!r} is too large")
    return _checked(Fraction(text))


_BINARY: Mapping[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}


def _binary(op: str, a: Value, b: Value) -> Value:
    exact = a.exact and b.exact
    x, y = a.number, b.number
    if op == "**":
        return _power(a, b)
    if op in ("/", "//", "%") and y == 0:
        raise CalcError("division by zero")
    result = {
        "+": lambda: x + y,
        "-": lambda: x - y,
        "*": lambda: x * y,
        "/": lambda: x / y,
        "//": lambda: Fraction(x // y),
        "%": lambda: x % y,
    }[op]()
    return _checked(result, exact)


def _eval(node: ast.AST, source: str) -> Value:
    if isinstance(node, ast.Expression):
        return _eval(node.body, source)
    if isinstance(node, ast.Constant):
        return _literal(node, source)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _eval(node.operand, source)
        return Value(-value.number if isinstance(node.op, ast.USub) else value.number, value.exact)
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            # Models write ^ for a power: say what to write instead.
            raise CalcError(
                f"the operator {type(node.op).__name__} is not allowed; use "
                f"{' '.join(_BINARY.values())} (a power is **)"
            )
        return _binary(_BINARY[type(node.op)], _eval(node.left, source), _eval(node.right, source))
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        raise CalcError(f"unknown name {node.id!r}")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise CalcError(f"only these functions are allowed: {', '.join(FUNCTIONS)}")
        if node.keywords:
            raise CalcError("functions take no keyword arguments")
        args = [_eval(a, source) for a in node.args]
        return FUNCTIONS[node.func.id](*args)
    raise CalcError(f"{type(node).__name__} is not allowed in an expression")


def evaluate(expression: str) -> Value:
    """The exact value of ``expression``, or a :class:`CalcError` saying why not."""
    if len(expression) > MAX_LENGTH:
        raise CalcError(f"the expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise CalcError(f"not an expression: {exc.__class__.__name__}: {exc}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise CalcError(f"the expression has more than {MAX_NODES} parts")
    try:
        return _eval(tree, expression.strip())
    except RecursionError:
        raise CalcError("the expression is nested too deeply") from None


def render(value: Value) -> str:
    """An integer as itself, a terminating fraction as a decimal, any other as ``p/q``
    with a decimal beside it; an inexact value as a decimal marked approximate."""
    n = value.number
    digits = int(max(n.numerator.bit_length(), n.denominator.bit_length()) * 0.30103) + 1
    if digits > MAX_DIGITS_SHOWN:
        # Exact, but too long to show (and past Python's own int-to-text limit).
        with decimal.localcontext() as ctx:
            ctx.prec = DIGITS
            shown = f"{_decimal(n):.{DIGITS - 1}e}"
        return f"≈ {shown} (about {digits} digits exactly; shown rounded)"
    if not value.exact:
        with decimal.localcontext() as ctx:
            ctx.prec = DIGITS
            return f"≈ {_decimal(n).normalize():f} (approximate)"
    if n.denominator == 1:
        return str(n.numerator)
    d = n.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    with decimal.localcontext() as ctx:
        ctx.prec = DIGITS
        if d == 1 and len(str(n.denominator)) < DIGITS:
            ctx.prec = len(str(n.numerator)) + len(str(n.denominator)) + 2
            return f"{_decimal(n).normalize():f}"
        return f"{n.numerator}/{n.denominator} (≈ {_decimal(n).normalize():f})"


class CalculatorTool:
    """Exact arithmetic for the model: ``{"expression": "2**100 / 3"}``."""

    name = "calculator"
    description = (
        "Evaluate an arithmetic expression exactly. Numbers, + - * / // % ** and parentheses, "
        "and the functions sqrt, abs, floor, ceil, round, min, max; constants pi and e."
    )
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "expression": {"type": "string", "description": "for example (2**64 - 1) / 3"}
        },
        "required": ["expression"],
    }

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        expression = arguments.get("expression")
        if not isinstance(expression, str):
            return ToolResult('error: expected {"expression": "<arithmetic>"}', is_error=True)
        try:
            value = evaluate(expression)
        except CalcError as exc:
            return ToolResult(f"error: {exc}", is_error=True)
        return ToolResult(render(value), details={"exact": value.exact})
