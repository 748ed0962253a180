"""yamlsubset.py -- a reader for the YAML that deploy/, docker-compose*.yml
and the alert rules are written in, with Python's standard library only.

The subset: documents separated by `---`; block mappings and block
sequences (a sequence may sit at its key's indentation, as kubectl writes
it); plain, 'single' and "double" quoted scalars; `|` and `>` block
scalars (with `-` chomping); flow sequences of scalars (`["a", "b"]`);
`{}` and `[]`; comments. Integers become int, true/false bool, null and ~
None. Anything else YAML has (anchors, aliases, tags, flow mappings with
members, multi-line plain scalars, tabs) is an error rather than a guess,
and so is what YAML 1.1 readers such as Kubernetes' read otherwise than
YAML 1.2 ones: yes/no/on/off unquoted (booleans or strings) and integers
with a leading 0 (octal or decimal).

    load_all(text) -> [document, ...]
"""

import re


class YamlError(ValueError):
    pass


_INT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT = re.compile(r"^[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$")
_AMBIGUOUS = {"yes", "no", "on", "off", "y", "n"}


def _strip_comment(s):
    """s without a trailing comment; a '#' starts one at the start or after
    a space, outside a quoted scalar at the start of a value."""
    quote = None
    i = 0
    while i < len(s):
        c = s[i]
        if quote:
            if c == quote:
                if quote == "'" and i + 1 < len(s) and s[i + 1] == "'":
                    i += 1
                else:
                    quote = None
            elif c == "\\" and quote == '"':
                i += 1
        elif c in "'\"" and (i == 0 or s[i - 1] in " [,:-"):
            start = s[:i].rstrip()
            if start == "" or start.endswith((":", "-", "[", ",")):
                quote = c
        elif c == "#" and (i == 0 or s[i - 1] == " "):
            return s[:i].rstrip()
        i += 1
    return s.rstrip()


def _quoted(s, lineno):
    """The value of a quoted scalar that is all of s."""
    q = s[0]
    if len(s) < 2 or s[-1] != q:
        raise YamlError(f"line {lineno}: unterminated or trailing text: {s}")
    body = s[1:-1]
    if q == "'":
        if re.search(r"(?<!')'(?!')", body.replace("''", "")):
            raise YamlError(f"line {lineno}: stray quote in {s}")
        return body.replace("''", "'")
    out = []
    i = 0
    escapes = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "/": "/", "0": "\0", "r": "\r"}
    while i < len(body):
        c = body[i]
        if c == "\\":
            if i + 1 >= len(body) or body[i + 1] not in escapes:
                raise YamlError(f"line {lineno}: unsupported escape in {s}")
            out.append(escapes[body[i + 1]])
            i += 2
            continue
        if c == '"':
            raise YamlError(f"line {lineno}: stray quote in {s}")
        out.append(c)
        i += 1
    return "".join(out)


def _scalar(s, lineno):
    if s == "":
        return None
    if s[0] in "'\"":
        return _quoted(s, lineno)
    if s[0] in "&*!%@`|>" or s.startswith("{") and s != "{}":
        raise YamlError(f"line {lineno}: outside the subset: {s}")
    if s == "{}":
        return {}
    if s[0] == "[":
        if s[-1] != "]":
            raise YamlError(f"line {lineno}: unterminated flow sequence: {s}")
        inner = s[1:-1].strip()
        if inner == "":
            return []
        items = re.findall(r'\s*("(?:[^"\\]|\\.)*"|\'(?:[^\']|\'\')*\'|[^,]+)\s*(?:,|$)', inner)
        if ",".join(i.strip() for i in items).replace(" ", "") != inner.replace(" ", ""):
            raise YamlError(f"line {lineno}: flow sequence outside the subset: {s}")
        return [_scalar(i.strip(), lineno) for i in items]
    if s in ("null", "~", "Null", "NULL"):
        return None
    if s in ("true", "True", "TRUE"):
        return True
    if s in ("false", "False", "FALSE"):
        return False
    if s.lower() in _AMBIGUOUS:
        raise YamlError(f"line {lineno}: quote {s!r}: YAML 1.1 reads it as a boolean")
    if _INT.match(s):
        if re.match(r"^[-+]?0[0-9]", s):
            raise YamlError(f"line {lineno}: {s}: YAML 1.1 reads a leading 0 as octal, 1.2 does not")
        return int(s)
    if _FLOAT.match(s):
        return float(s)
    if ": " in s or s.endswith(":"):
        raise YamlError(f"line {lineno}: a plain scalar with ': ' in it: {s}")
    return s


def _split_key(content, lineno):
    """(key, rest) when content is `key: rest` or `key:`, else None."""
    if content[0] in "'\"":
        q = content[0]
        end = content.find(q, 1)
        while q == "'" and end != -1 and content[end + 1 : end + 2] == "'":
            end = content.find(q, end + 2)
        if end == -1:
            raise YamlError(f"line {lineno}: unterminated key: {content}")
        after = content[end + 1 :]
        if after == ":" or after.startswith(": "):
            return _quoted(content[: end + 1], lineno), after[1:].strip()
        return None
    m = re.match(r"^([^\s:#][^:]*?|[^\s:#]):(\s+|$)(.*)$", content)
    if not m:
        return None
    key = m.group(1)
    if "[" in key or "{" in key:
        return None
    return key, m.group(3)


class _Reader:
    def __init__(self, lines):
        # (indent, content, lineno, raw) of every line that is not blank
        # or a comment; raw keeps block scalars' text as written.
        self.lines = []
        for lineno, raw in lines:
            if "\t" in raw[: len(raw) - len(raw.lstrip())]:
                raise YamlError(f"line {lineno}: tab in indentation")
            content = _strip_comment(raw.strip()) if raw.strip() else ""
            self.lines.append((len(raw) - len(raw.lstrip(" ")), content, lineno, raw))
        self.i = 0

    def _skip_blank(self):
        while self.i < len(self.lines) and self.lines[self.i][1] == "":
            self.i += 1

    def peek(self):
        self._skip_blank()
        return self.lines[self.i] if self.i < len(self.lines) else None

    def node(self, indent):
        line = self.peek()
        if line is None:
            return None
        ind, content, lineno, _ = line
        if ind != indent:
            raise YamlError(f"line {lineno}: unexpected indentation")
        if content == "-" or content.startswith("- "):
            return self.sequence(indent)
        if _split_key(content, lineno) is not None:
            return self.mapping(indent)
        self.i += 1
        value = _scalar(content, lineno)
        nxt = self.peek()
        if nxt is not None and nxt[0] > indent:
            raise YamlError(f"line {nxt[2]}: a plain scalar over several lines")
        return value

    def block_scalar(self, style, parent_indent, lineno):
        if style not in ("|", "|-", ">", ">-"):
            raise YamlError(f"line {lineno}: block scalar header {style} outside the subset")
        self.i += 1
        text = []
        block_indent = None
        while self.i < len(self.lines):
            ind, content, _, raw = self.lines[self.i]
            if raw.strip() == "":
                text.append("")
                self.i += 1
                continue
            if ind <= parent_indent:
                break
            if block_indent is None:
                block_indent = ind
            if ind < block_indent:
                break
            text.append(raw[block_indent:].rstrip("\n"))
            self.i += 1
        while text and text[-1] == "":
            text.pop()
            # an emptied line is a blank one of the block, not a node
        if style[0] == "|":
            value = "\n".join(text)
        else:
            value = " ".join(t for t in text if t != "")
        return value if style.endswith("-") else value + "\n"

    def value_after_key(self, indent, rest, lineno):
        """The value of `key: rest` at indent."""
        if rest in ("|", "|-", ">", ">-") or rest.startswith(("|", ">")):
            return self.block_scalar(rest, indent, lineno)
        self.i += 1
        if rest != "":
            value = _scalar(rest, lineno)
            nxt = self.peek()
            if nxt is not None and nxt[0] > indent:
                raise YamlError(f"line {nxt[2]}: a plain scalar over several lines")
            return value
        nxt = self.peek()
        if nxt is None:
            return None
        if nxt[0] > indent:
            return self.node(nxt[0])
        if nxt[0] == indent and (nxt[1] == "-" or nxt[1].startswith("- ")):
            return self.sequence(indent)
        return None

    def mapping(self, indent):
        out = {}
        while True:
            line = self.peek()
            if line is None or line[0] < indent:
                return out
            ind, content, lineno, _ = line
            if ind > indent:
                raise YamlError(f"line {lineno}: unexpected indentation")
            if content == "-" or content.startswith("- "):
                return out
            kv = _split_key(content, lineno)
            if kv is None:
                raise YamlError(f"line {lineno}: expected 'key: value': {content}")
            key, rest = kv
            if key in out:
                raise YamlError(f"line {lineno}: duplicate key {key!r}")
            out[key] = self.value_after_key(indent, rest, lineno)

    def sequence(self, indent):
        out = []
        while True:
            line = self.peek()
            if line is None or line[0] != indent:
                if line is not None and line[0] > indent:
                    raise YamlError(f"line {line[2]}: unexpected indentation")
                return out
            ind, content, lineno, raw = line
            if not (content == "-" or content.startswith("- ")):
                return out
            rest = content[1:].lstrip()
            if rest == "":
                self.i += 1
                nxt = self.peek()
                if nxt is not None and nxt[0] > indent:
                    out.append(self.node(nxt[0]))
                else:
                    out.append(None)
                continue
            # "- key: v" or "- scalar": read the rest as a node of its own
            # at the column where it starts.
            col = ind + (len(content) - len(rest))
            self.lines[self.i] = (col, rest, lineno, " " * col + rest)
            out.append(self.node(col))


def load_all(text):
    """Every document of text, parsed."""
    docs = []
    current = []
    for lineno, raw in enumerate(text.split("\n"), 1):
        if raw.rstrip() == "---":
            docs.append(current)
            current = []
            continue
        if raw.startswith("%") or raw.rstrip() == "...":
            raise YamlError(f"line {lineno}: directives are outside the subset")
        current.append((lineno, raw))
    docs.append(current)
    out = []
    for lines in docs:
        r = _Reader(lines)
        if r.peek() is None:
            continue
        value = r.node(r.peek()[0])
        left = r.peek()
        if left is not None:
            raise YamlError(f"line {left[2]}: unexpected text: {left[1]}")
        out.append(value)
    return out


def load(text):
    """The one document of text."""
    docs = load_all(text)
    if len(docs) != 1:
        raise YamlError(f"{len(docs)} documents where one was expected")
    return docs[0]
