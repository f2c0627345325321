"""A subscription trie keyed by subject tokens, as nats-server's sublist: matching costs the subject's depth,
not the number of subscriptions, so publishing and calling stay flat however many endpoints a world serves.

Each level maps a literal token to the next level and keeps its ``*`` child and its ``>`` subscribers apart;
a subject walks the literal branch and the ``*`` branch of each level, collecting the ``>`` subscribers it
passes. (The bus caches the answers per subject until the next change, as nats-server does.)

>>> s = SubList()
>>> for pattern in ("a.b", "a.*", "a.>", ">", "b.*"):
...     s.insert(pattern, pattern)
>>> s.match("a.b")
['a.b', 'a.*', 'a.>', '>']
>>> s.match("a.b.c"), s.match("b")
(['a.>', '>'], ['>'])
"""

from __future__ import annotations

from typing import Generic, Hashable, TypeVar

__all__ = ["SubList"]

T = TypeVar("T", bound=Hashable)


class _Level(Generic[T]):
    __slots__ = ("literal", "star", "plain", "tail")

    def __init__(self) -> None:
        self.literal: dict[str, _Level[T]] = {}
        self.star: _Level[T] | None = None
        self.plain: dict[T, int] = {}  # subscriptions whose pattern ends at this level (value: insertion order)
        self.tail: dict[T, int] = {}   # subscriptions whose pattern ends with ``>`` after this level

    def empty(self) -> bool:
        return not (self.literal or self.star or self.plain or self.tail)


class SubList(Generic[T]):
    """Subscriptions (any hashable item) by NATS pattern; :meth:`match` returns them in insertion order."""

    def __init__(self) -> None:
        self._root: _Level[T] = _Level()
        self._order = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def insert(self, pattern: str, item: T) -> None:
        level = self._root
        tokens = pattern.split(".")
        for token in tokens[:-1]:
            level = self._child(level, token)
        last = tokens[-1]
        self._order += 1
        if last == ">":
            level.tail[item] = self._order
        else:
            self._child(level, last).plain[item] = self._order
        self._count += 1

    def remove(self, pattern: str, item: T) -> bool:
        """Remove ``item`` subscribed on ``pattern``; False when it was not there."""
        tokens = pattern.split(".")
        path: list[tuple[_Level[T], str]] = []
        level: _Level[T] | None = self._root
        for token in tokens[:-1]:
            assert level is not None
            path.append((level, token))
            level = level.star if token == "*" else level.literal.get(token)
            if level is None:
                return False
        assert level is not None
        last = tokens[-1]
        if last == ">":
            found = level.tail.pop(item, None) is not None
        else:
            path.append((level, last))
            end = level.star if last == "*" else level.literal.get(last)
            found = end is not None and end.plain.pop(item, None) is not None
        if not found:
            return False
        self._count -= 1
        self._prune(path)
        return True

    def match(self, subject: str) -> list[T]:
        """Every subscription whose pattern matches ``subject`` (a subject with no wildcards)."""
        hits: dict[T, int] = {}
        self._walk(self._root, subject.split("."), 0, hits)
        return sorted(hits, key=hits.__getitem__) if len(hits) > 1 else list(hits)

    def _walk(self, level: _Level[T], tokens: list[str], i: int, hits: dict[T, int]) -> None:
        if i == len(tokens):
            hits.update(level.plain)
            return
        if level.tail:
            hits.update(level.tail)
        nxt = level.literal.get(tokens[i])
        if nxt is not None:
            self._walk(nxt, tokens, i + 1, hits)
        if level.star is not None:
            self._walk(level.star, tokens, i + 1, hits)

    @staticmethod
    def _child(level: _Level[T], token: str) -> _Level[T]:
        if token == "*":
            if level.star is None:
                level.star = _Level()
            return level.star
        nxt = level.literal.get(token)
        if nxt is None:
            nxt = level.literal[token] = _Level()
        return nxt

    @staticmethod
    def _prune(path: list[tuple[_Level[T], str]]) -> None:
        """Drop the levels a removal left empty, deepest first, so the trie does not grow with churn."""
        for parent, token in reversed(path):
            child = parent.star if token == "*" else parent.literal.get(token)
            if child is None or not child.empty():
                return
            if token == "*":
                parent.star = None
            else:
                del parent.literal[token]
