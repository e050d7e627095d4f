"""A small PromQL parser for the dashboard test: the subset dashboards use, strict, returning metric names.

It accepts selectors with matchers, range vectors, offsets, aggregations
with by/without, function calls, numbers, strings, unary minus and binary
operators with bool/on/ignoring/group_left/group_right, and Grafana's
``$__rate_interval``-style durations; anything else raises PromQLError, so
a typo in a query fails the test instead of being skipped.
"""

from __future__ import annotations

import re
from typing import List, Set, Tuple


class PromQLError(ValueError):
    """The expression is not (our subset of) PromQL."""


AGGREGATIONS = {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "group", "topk", "bottomk", "quantile",
                "count_values"}
AGGREGATION_PARAMETER = {"topk", "bottomk", "quantile", "count_values"}
FUNCTIONS = {"rate", "irate", "increase", "delta", "idelta", "deriv", "abs", "ceil", "floor", "round", "clamp",
             "clamp_min", "clamp_max", "histogram_quantile", "label_replace", "label_join", "vector", "scalar",
             "time", "absent", "absent_over_time", "changes", "resets", "sort", "sort_desc", "sqrt", "exp", "ln",
             "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
             "last_over_time", "quantile_over_time", "timestamp"}
BINARY = {"+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "and", "or", "unless"}
MODIFIERS = {"on", "ignoring"}
GROUPING = {"group_left", "group_right"}
KEYWORDS = AGGREGATIONS | FUNCTIONS | {"by", "without", "bool", "offset"} | MODIFIERS | GROUPING | {
    "and", "or", "unless"}

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<duration>(?:[0-9]+(?:ms|[smhdwy]))+|\$__(?:rate_interval|interval|range))
  | (?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|(?:[Ii]nf|NaN)\b)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|==|!=|>=|<=|[-+*/%^<>=(){}\[\],])
""", re.VERBOSE)

Token = Tuple[str, str]


def tokenize(text: str) -> List[Token]:
    """Split ``text`` into (kind, text) tokens; PromQLError at the first character no token starts with."""
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise PromQLError("unexpected %r at %d in %r" % (text[pos], pos, text))
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append((kind, match.group()))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.metrics: Set[str] = set()

    def peek(self) -> Token:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self, *values: str) -> str:
        kind, value = self.peek()
        if values and value not in values:
            raise PromQLError("expected %s, got %r in %r" % (" or ".join(values), value or "the end", self.text))
        if kind == "end":
            raise PromQLError("unexpected end of %r" % self.text)
        self.pos += 1
        return value

    def parse(self) -> Set[str]:
        self.expr()
        if self.peek()[0] != "end":
            raise PromQLError("unexpected %r in %r" % (self.peek()[1], self.text))
        return self.metrics

    def expr(self) -> None:
        self.unary()
        while self.peek()[1] in BINARY:
            self.take()
            if self.peek()[1] == "bool":
                self.take()
            if self.peek()[1] in MODIFIERS:
                self.take()
                self.labels()
            if self.peek()[1] in GROUPING:
                self.take()
                if self.peek()[1] == "(":
                    self.labels()
            self.unary()

    def unary(self) -> None:
        if self.peek()[1] in ("-", "+"):
            self.take()
        self.primary()
        if self.peek()[1] == "[":
            self.take()
            self.duration()
            self.take("]")
        if self.peek()[1] == "offset":
            self.take()
            self.duration()

    def duration(self) -> None:
        if self.peek()[0] != "duration":
            raise PromQLError("expected a duration, got %r in %r" % (self.peek()[1], self.text))
        self.take()

    def primary(self) -> None:
        kind, value = self.peek()
        if kind in ("number", "string"):
            self.take()
        elif value == "(":
            self.take()
            self.expr()
            self.take(")")
        elif value == "{":
            self.matchers()
        elif kind == "ident" and value in AGGREGATIONS:
            self.aggregation()
        elif kind == "ident" and value in FUNCTIONS:
            self.take()
            self.arguments()
        elif kind == "ident" and value not in KEYWORDS:
            self.take()
            if self.peek()[1] == "(":
                raise PromQLError("unknown function %r in %r" % (value, self.text))
            self.metrics.add(value)
            if self.peek()[1] == "{":
                self.matchers()
        else:
            raise PromQLError("unexpected %r in %r" % (value or "end", self.text))

    def aggregation(self) -> None:
        name = self.take()
        if self.peek()[1] in ("by", "without"):
            self.take()
            self.labels()
        self.take("(")
        if name in AGGREGATION_PARAMETER:
            self.expr()
            self.take(",")
        self.expr()
        self.take(")")
        if self.peek()[1] in ("by", "without"):
            self.take()
            self.labels()

    def arguments(self) -> None:
        self.take("(")
        if self.peek()[1] != ")":
            self.expr()
            while self.peek()[1] == ",":
                self.take()
                self.expr()
        self.take(")")

    def labels(self) -> None:
        self.take("(")
        while self.peek()[1] != ")":
            if self.peek()[0] != "ident":
                raise PromQLError("expected a label name, got %r in %r" % (self.peek()[1], self.text))
            self.take()
            if self.peek()[1] != ",":
                break
            self.take()
        self.take(")")

    def matchers(self) -> None:
        self.take("{")
        while self.peek()[1] != "}":
            if self.peek()[0] != "ident":
                raise PromQLError("expected a label name, got %r in %r" % (self.peek()[1], self.text))
            self.take()
            self.take("=", "!=", "=~", "!~")
            if self.peek()[0] != "string":
                raise PromQLError("expected a string, got %r in %r" % (self.peek()[1], self.text))
            self.take()
            if self.peek()[1] != ",":
                break
            self.take()
        self.take("}")


def metric_names(expr: str) -> Set[str]:
    """Return the metric names ``expr`` selects; PromQLError if it does not parse."""
    return _Parser(expr).parse()
