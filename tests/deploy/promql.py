"""promql.py -- what a PromQL expression reads: the metric names of its
selectors with their label matchers, and the labels it groups or matches
by. Enough PromQL for the dashboard and the alert rules of deploy/; a
selector without a metric name ({__name__=...}) is refused, not guessed.

    uses(expr) -> (selectors, grouping)
        selectors: [(metric, {label: (op, value)})]
        grouping:  {label, ...} of by/without/on/ignoring/group_left/right
"""

import re

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<var>\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)
    | (?P<num>[0-9][0-9.eE+]*[a-z]*|\.[0-9]+)
    | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}\[\]@])
    )""",
    re.X,
)

AGGREGATIONS = {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk",
                "bottomk", "quantile", "count_values", "group", "limitk", "limit_ratio"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2"} | GROUPING
# Grafana's template function: label_values(metric{...}, label)
TEMPLATE_FUNCTIONS = {"label_values", "query_result", "metrics", "label_names"}


class PromqlError(ValueError):
    pass


def tokens(expr):
    out = []
    pos = 0
    expr = expr.rstrip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise PromqlError(f"cannot read {expr[pos:pos + 20]!r} in {expr!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _unquote(s):
    return s[1:-1].encode().decode("unicode_escape") if s[0] != "`" else s[1:-1]


def uses(expr):
    toks = tokens(expr)
    selectors = []
    grouping = set()
    i = 0

    def label_list(j):
        """Labels of a '( a, b )' list starting at toks[j]; returns next j."""
        if j >= len(toks) or toks[j][1] != "(":
            return j
        j += 1
        while j < len(toks) and toks[j][1] != ")":
            if toks[j][0] == "ident":
                grouping.add(toks[j][1])
            j += 1
        return j + 1

    def matchers(j):
        """Label matchers of a '{...}' starting at toks[j]; returns (dict, next j)."""
        got = {}
        j += 1
        while j < len(toks) and toks[j][1] != "}":
            if toks[j][1] == ",":
                j += 1
                continue
            if j + 2 >= len(toks) or toks[j][0] != "ident" or toks[j + 1][0] != "op" or toks[j + 2][0] not in ("str", "var"):
                raise PromqlError(f"a label matcher outside the subset in {expr!r}")
            value = _unquote(toks[j + 2][1]) if toks[j + 2][0] == "str" else toks[j + 2][1]
            got[toks[j][1]] = (toks[j + 1][1], value)
            j += 3
        if j >= len(toks):
            raise PromqlError(f"unclosed {{ in {expr!r}")
        return got, j + 1

    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "op" and text == "{":
            raise PromqlError(f"a selector without a metric name in {expr!r}")
        if kind == "op" and text == "[":
            while i < len(toks) and toks[i][1] != "]":
                i += 1
            i += 1
            continue
        if kind != "ident":
            i += 1
            continue
        if text in GROUPING:
            i = label_list(i + 1)
            continue
        if text in KEYWORDS or text in AGGREGATIONS or nxt == "(":
            i += 1
            continue
        if nxt == "{":
            labels, i = matchers(i + 1)
        else:
            labels, i = {}, i + 1
        selectors.append((text, labels))
    return selectors, grouping


def template_uses(query):
    """A Grafana variable query: label_values(metric{...}, label) gives the
    metric's selector and the label it lists."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", query, re.S)
    if not m:
        raise PromqlError(f"a variable query outside the subset: {query!r}")
    selectors, grouping = uses(m.group(1))
    return selectors, grouping | {m.group(2)}
