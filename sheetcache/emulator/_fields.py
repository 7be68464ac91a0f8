"""Field masks: ``fields=sheets(properties(title))`` on reads, ``"fields": "gridProperties/rowCount"``
on updates.

A mask parses to a tree of dicts: ``{"sheets": {"properties": {"title": {}}}}``; an empty dict
selects a whole subtree and the key ``"*"`` selects everything at its level. Paths may use
``.`` or ``/`` between names, as Google accepts both.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = [
    "Mask",
    "apply_mask",
    "merge_masked",
    "parse_mask",
    "selects",
]

Mask = dict[str, "Mask"]


def parse_mask(text: str) -> Mask:
    """Parse a field mask.

    Raises:
        ValueError: unbalanced parentheses or an empty name.
    """
    tree: Mask = {}
    pos = _parse_list(text.replace(" ", ""), 0, tree)
    if pos != len(text.replace(" ", "")):
        raise ValueError(text)
    return tree


def _parse_list(text: str, pos: int, into: Mask) -> int:
    while True:
        start = pos
        while pos < len(text) and text[pos] not in ",()":
            pos += 1
        path = [name for name in text[start:pos].replace("/", ".").split(".")]
        if any(not name for name in path):
            raise ValueError(text)
        node = into
        for name in path:
            node = node.setdefault(name, {}) if node is not None else {}
        if pos < len(text) and text[pos] == "(":
            pos = _parse_list(text, pos + 1, node)
            if pos >= len(text) or text[pos] != ")":
                raise ValueError(text)
            pos += 1
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        return pos


def apply_mask(value: Any, mask: Mask) -> Any:
    """The part of a JSON value a mask selects (lists are filtered element-wise)."""
    if not mask or "*" in mask:
        return value
    if isinstance(value, list):
        return [apply_mask(item, mask) for item in value]
    if isinstance(value, dict):
        out = {}
        for key, sub in mask.items():
            if key in value:
                out[key] = apply_mask(value[key], sub) if sub else value[key]
        return out
    return value


def selects(mask: Mask | None, *path: str) -> bool:
    """Whether a mask selects anything at or under ``path`` (no mask selects everything)."""
    if mask is None:
        return True
    node = mask
    for name in path:
        if not node or "*" in node:
            return True
        if name not in node:
            return False
        node = node[name]
    return True


def merge_masked(target: dict[str, Any], source: dict[str, Any], mask: Mask) -> None:
    """Copy the masked fields of ``source`` into ``target``; masked fields absent from
    ``source`` are cleared (Google's update semantics).
    """
    for key, sub in mask.items():
        if key == "*":
            target.clear()
            target.update(copy.deepcopy(source))
            continue
        if not sub:
            if key in source and source[key] is not None:
                target[key] = copy.deepcopy(source[key])
            else:
                target.pop(key, None)
            continue
        inner = target.get(key)
        if not isinstance(inner, dict):
            inner = {}
        src = source.get(key)
        merge_masked(inner, src if isinstance(src, dict) else {}, sub)
        if inner:
            target[key] = inner
        else:
            target.pop(key, None)
