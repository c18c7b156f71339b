"""YAML text -> a small tree of located values (every value knows its line).

PyYAML's ``compose`` gives nodes with marks; this module turns them into
``YMap`` / ``YSeq`` / ``YScalar`` objects that keep the 1-based line of every
key and value, so that validation can name the line of each problem. Scalars
keep their source text too: a definition's strings are taken as written
(``Yes`` stays the string "Yes", not YAML 1.1's boolean).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from .issues import Issue

MERGE_TAG = "tag:yaml.org,2002:merge"
STR_TAG = "tag:yaml.org,2002:str"
#: Values a definition may expand to. Aliases are copied, so ``&a [*b, *b, ...]`` chains
#: ("billion laughs") would otherwise grow exponentially; a real definition has a few thousand.
MAX_NODES = 200_000


class _TooBig(Exception):
    pass


@dataclass
class YScalar:
    value: Any
    raw: str
    line: int
    is_str: bool  # the YAML resolved it as a string (quoted or plain text)

    @property
    def is_null(self) -> bool:
        return self.value is None


@dataclass
class YSeq:
    items: list[YNode]
    line: int


@dataclass
class YEntry:
    key: str
    key_line: int
    value: YNode


@dataclass
class YMap:
    entries: dict[str, YEntry] = field(default_factory=dict)
    line: int = 1

    def get(self, key: str) -> YNode | None:
        entry = self.entries.get(key)
        return entry.value if entry else None

    def line_of(self, key: str) -> int:
        entry = self.entries.get(key)
        return entry.key_line if entry else self.line


YNode = YScalar | YSeq | YMap


def parse_yaml(text: str) -> tuple[YNode | None, list[Issue]]:
    """Parse one YAML document; return its located tree (None if empty) and any errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        return None, [Issue(1, "malformed YAML: nested too deeply")]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        return None, [Issue(line, f"malformed YAML: {problem or exc}")]
    except yaml.YAMLError as exc:
        return None, [Issue(1, f"malformed YAML: {exc}")]
    if root is None:
        return None, []
    issues: list[Issue] = []
    constructor = SafeConstructor()
    constructor.node_budget = MAX_NODES
    try:
        tree = _convert(root, constructor, issues)
    except (_TooBig, RecursionError):  # alias bombs, self-referencing aliases, deep nesting
        return None, [
            Issue(
                1,
                f"the definition expands to more than {MAX_NODES} values or nests too deeply "
                "(check anchors and aliases)",
            )
        ]
    return tree, issues


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _convert(node: yaml.Node, constructor: SafeConstructor, issues: list[Issue]) -> YNode:
    constructor.node_budget -= 1
    if constructor.node_budget < 0:
        raise _TooBig
    if isinstance(node, yaml.MappingNode):
        return _convert_mapping(node, constructor, issues)
    if isinstance(node, yaml.SequenceNode):
        return YSeq([_convert(item, constructor, issues) for item in node.value], _line(node))
    try:
        value = constructor.construct_object(node, deep=True)
    except ConstructorError as exc:
        issues.append(Issue(_line(node), f"malformed YAML value: {exc.problem}"))
        value = node.value
    return YScalar(value=value, raw=node.value, line=_line(node), is_str=node.tag == STR_TAG)


def _convert_mapping(node: yaml.MappingNode, constructor: SafeConstructor, issues: list[Issue]) -> YMap:
    explicit = {id(key) for key, _ in node.value if key.tag != MERGE_TAG}
    try:
        constructor.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
    except ConstructorError as exc:
        issues.append(Issue(_line(node), f"malformed YAML: {exc.problem}"))
    result = YMap(line=_line(node))
    merged: set[str] = set()
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            issues.append(Issue(_line(key_node), "a key must be a plain name, not a list or mapping"))
            continue
        key = key_node.value
        if id(key_node) not in explicit:  # came in through a merge: explicit keys win
            if key not in result.entries:
                merged.add(key)
                result.entries[key] = YEntry(key, _line(key_node), _convert(value_node, constructor, issues))
            continue
        if key in result.entries and key not in merged:
            first = result.entries[key].key_line
            issues.append(Issue(_line(key_node), f"duplicate key '{key}' (first given on line {first})"))
            continue
        merged.discard(key)
        result.entries[key] = YEntry(key, _line(key_node), _convert(value_node, constructor, issues))
    return result


def to_plain(node: YNode | None) -> Any:
    """The plain Python value of a subtree (for params and data_policy)."""
    if node is None:
        return None
    if isinstance(node, YMap):
        return {key: to_plain(entry.value) for key, entry in node.entries.items()}
    if isinstance(node, YSeq):
        return [to_plain(item) for item in node.items]
    return node.value


def find_line(node: YNode | None, path: list[str], default: int) -> int:
    """The line of the deepest existing node along ``path`` (mapping keys only)."""
    line = default
    for part in path:
        if not isinstance(node, YMap) or part not in node.entries:
            break
        line = node.entries[part].key_line
        node = node.entries[part].value
    return line
