"""REST list mechanics: BBQL-lite filtering (`q`), `sort`, and the pagination envelope (§6.1)."""
from __future__ import annotations

import re
import threading
import time
from collections import deque
from typing import Any, Callable, Mapping
from urllib.parse import urlencode

DEFAULT_PAGELEN, MAX_PAGELEN = 10, 100


class ApiError(Exception):
    """Answer with Bitbucket's error envelope and this status."""

    def __init__(self, status: int, message: str, detail: object = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail
        self.headers = dict(headers or {})


# --- BBQL-lite ---------------------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(?:(\()|(\))|("(?:[^"\\]|\\.)*")|(!=|!~|>=|<=|=|~|>|<)|([^\s()"=~<>!]+))')


def _tokenize(q: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(q):
        if q[pos:].strip() == "":
            break
        m = _TOKEN.match(q, pos)
        if not m or m.end() == pos:
            raise ApiError(400, "Invalid query", f"could not parse q near {q[pos:pos + 20]!r}")
        pos = m.end()
        lp, rp, string, op, word = m.groups()
        if lp or rp:
            tokens.append(("paren", lp or rp))
        elif string is not None:
            tokens.append(("value", re.sub(r"\\(.)", r"\1", string[1:-1])))
        elif op:
            tokens.append(("op", op))
        elif word.upper() in ("AND", "OR"):
            tokens.append(("bool", word.upper()))
        else:
            tokens.append(("word", word))
    return tokens


def _literal(word: str) -> Any:
    low = word.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    try:
        return int(word) if re.fullmatch(r"-?\d+", word) else float(word)
    except ValueError:
        return word  # e.g. an unquoted datetime


def resolve(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op in ("~", "!~"):
        hit = isinstance(actual, str) and isinstance(expected, str) and expected.lower() in actual.lower()
        return hit if op == "~" else not hit
    if op in ("=", "!="):
        return (actual == expected) == (op == "=")
    if actual is None or expected is None:
        return False
    try:
        a, b = (float(actual), float(expected)) if not isinstance(actual, str) else (actual, str(expected))
        return {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]
    except (TypeError, ValueError):
        return False


def compile_query(q: str) -> Callable[[dict], bool]:
    """Compile a BBQL expression (`name ~ "x" AND is_private = true`, parentheses, OR) to a predicate."""
    tokens, pos = _tokenize(q), 0

    def peek() -> tuple[str, str] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take(kind: str) -> str:
        nonlocal pos
        tok = peek()
        if tok is None or tok[0] != kind:
            raise ApiError(400, "Invalid query", f"expected {kind} in q={q!r}")
        pos += 1
        return tok[1]

    def expr(level: str = "OR") -> Callable[[dict], bool]:
        nonlocal pos
        sub = "AND" if level == "OR" else None
        parts = [expr(sub) if sub else factor()]
        while peek() == ("bool", level):
            pos += 1
            parts.append(expr(sub) if sub else factor())
        if len(parts) == 1:
            return parts[0]
        return (lambda o: any(p(o) for p in parts)) if level == "OR" else (lambda o: all(p(o) for p in parts))

    def factor() -> Callable[[dict], bool]:
        nonlocal pos
        if peek() == ("paren", "("):
            pos += 1
            inner = expr()
            take("paren")
            return inner
        field, op = take("word"), take("op")
        tok = peek()
        if tok is None or tok[0] not in ("value", "word"):
            raise ApiError(400, "Invalid query", f"expected a value in q={q!r}")
        pos += 1
        value = tok[1] if tok[0] == "value" else _literal(tok[1])
        return lambda o: _compare(resolve(o, field), op, value)

    pred = expr()
    if pos != len(tokens):
        raise ApiError(400, "Invalid query", f"unexpected input in q={q!r}")
    return pred


def apply_q_sort(items: list[dict], q: str | None, sort: str | None) -> list[dict]:
    if q:
        pred = compile_query(q)
        items = [i for i in items if pred(i)]
    if sort:
        reverse, field = sort.startswith("-"), sort.lstrip("-")
        items = sorted(items, key=lambda i: (resolve(i, field) is None, str(resolve(i, field) or "")),
                       reverse=reverse)
    return items


# --- pagination -------------------------------------------------------------------------------

def paginate(items: list[dict], args: Any, self_url: str) -> dict:
    """The paged envelope: size, page, pagelen, values and an absolute `next`/`previous`."""
    try:
        page = int(args.get("page", 1))
        pagelen = int(args.get("pagelen", DEFAULT_PAGELEN))
    except ValueError:
        raise ApiError(400, "Invalid page or pagelen") from None
    if page < 1:
        raise ApiError(400, "Invalid page", "page must be 1 or more")
    if not 1 <= pagelen <= MAX_PAGELEN:
        raise ApiError(400, "Invalid pagelen", f"pagelen must be between 1 and {MAX_PAGELEN}")
    start = (page - 1) * pagelen
    env = {"pagelen": pagelen, "size": len(items), "page": page, "values": items[start:start + pagelen]}

    def link(p: int) -> str:
        params = [(k, v) for k, vs in args.lists() for v in vs if k != "page"] + [("page", str(p))]
        return f"{self_url}?{urlencode(params)}"

    if start + pagelen < len(items):
        env["next"] = link(page + 1)
    if page > 1:
        env["previous"] = link(page - 1)
    return env


# --- rate limiting ----------------------------------------------------------------------------

class RateLimiter:
    """Rolling-window request budget per principal (`/2.0/repositories/*`: 1,000/h on Bitbucket)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> float | None:
        """Record one request; return seconds to wait when over budget (the request is not counted)."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(0.0, hits[0] + self.window - now)
            hits.append(now)
            return None
