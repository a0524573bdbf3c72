"""Reading YAML configuration files (``reidpipe run --config``, ``reidpipe train --config``).

One reader for every config file: safe YAML (no Python objects), ``1e-5`` read as a number as in
YAML 1.2, a key given twice in one mapping refused (YAML would silently keep the last one, so a
setting the user wrote would not be the one used), only regular files of at most
``limits.MAX_CONFIG_BYTES`` (``/dev/zero`` or a huge file never fills the memory). Every problem is one
:class:`ConfigError` line naming the file and, for bad YAML, the line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from reidpipe.errors import ConfigError
from reidpipe.limits import MAX_CONFIG_BYTES


class Loader(yaml.SafeLoader):
    """YAML 1.1 safe loader that reads ``1e-5`` (no dot) as a float, as YAML 1.2 does, and refuses a
    key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)):
                continue  # an unhashable key is refused by the base class
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Parse YAML text with :class:`Loader` (``yaml.YAMLError`` on bad YAML)."""
    return yaml.load(text, Loader=Loader)  # noqa: S506 - Loader is a SafeLoader


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: what is wrong and at which line."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or type(exc).__name__
    return f"line {mark.line + 1}: {problem}" if mark is not None else str(problem)


def read_yaml_file(path: str | Path) -> Any:
    """The parsed content of the YAML file ``path`` (which must exist): ``ConfigError`` naming it when
    it is not a regular file, is over ``MAX_CONFIG_BYTES``, is not UTF-8 or not valid YAML."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} is not a regular file")
    try:
        with open(p, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"config file {p} is not readable ({exc.strerror or type(exc).__name__})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {p} is over {MAX_CONFIG_BYTES} bytes; a config is a few kB of YAML")
    try:
        return load_yaml(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {p} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML ({yaml_problem(exc)})") from None
