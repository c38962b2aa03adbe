"""YAML files read with the line of every key, so an error can say where it is.

The node tree is composed first (it carries marks), then turned into plain Python values
while the line of each key and list item is recorded by its path, e.g.
``("multi_bit", "clusters", "sizes", 2)``. A key given twice is an error, not the last
one silently winning as in plain PyYAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed.config.errors import ConfigError

Loc = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``7e-8`` as a number (YAML 1.1 wants ``7.0e-8``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


@dataclass
class YamlDocument:
    """The values of one YAML file and the line (1-based) of each key or item."""

    path: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line(self, loc: Loc) -> int | None:
        """The line of ``loc``, or of its nearest enclosing key that has one."""
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None

    @property
    def directory(self) -> Path:
        return Path(self.path).parent


def read_yaml(path: str | Path) -> YamlDocument:
    """Read ``path`` into a ``YamlDocument``; raises ConfigError on any problem."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(name, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(name, f"not UTF-8 text ({exc.reason} at octet {exc.start})") from None
    loader = _Loader(text)
    doc = YamlDocument(name, None)
    try:
        node = loader.get_single_node()
        if node is not None:
            doc.data = _value(loader, node, (), doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "unreadable"
        raise ConfigError(name, f"bad YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(name, f"bad YAML: {exc}") from None
    finally:
        loader.dispose()
    return doc


def _value(loader: _Loader, node: yaml.Node, loc: Loc, doc: YamlDocument) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # expands `<<:` merge keys in place
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str | int | float | bool) or key is None:
                raise ConfigError(doc.path, f"a key must be a plain name, got {key!r}", line)
            if key in out:
                first = doc.lines[(*loc, key)]
                raise ConfigError(doc.path, f"{key!r}: duplicate key (first at line {first})", line)
            doc.lines[(*loc, key)] = line
            out[key] = _value(loader, value_node, (*loc, key), doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            doc.lines[(*loc, i)] = item.start_mark.line + 1
            items.append(_value(loader, item, (*loc, i), doc))
        return items
    return loader.construct_object(node, deep=True)
