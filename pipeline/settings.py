"""One declaration per pipeline setting: its rule and the flags that set it, on the config field itself.

Every field of the config dataclasses (``pipeline/config.py``) is declared with :func:`setting`: its
default, its rule (``pipeline/validate.py``; the bounds in ``reidpipe/limits.py``) and the command-line
:class:`Flag` s that set it, with their help. From that one declaration come

- the arguments of ``reidpipe run`` / ``bench`` (:func:`add_flags`),
- the config a command line asks for (:func:`flag_overrides`),
- the check of every value (``validate.check_config``), whose error names the flag the user typed
  (:func:`flag_of`) or, for a config file or the Python API, the key.

A flag sets one key; a key may have several flags (``--refine`` / ``--online`` both set ``link.refine``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from typing import Any

from reidpipe.errors import UsageError

RULE, FLAGS, NAMED_BY = "rule", "flags", "named_by"

# the argument groups of ``reidpipe run --help``, in order; ``bench`` takes the pipeline's only
PIPELINE_GROUPS = ("sources", "detection", "tracking", "re-identification", "cross-camera linking", "execution")
OUTPUT_GROUPS = ("outputs", "gallery (identities that last across runs, docs/gallery.md)")


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()


@dataclass(frozen=True)
class Flag:
    """A command-line flag that sets one setting.

    ``type`` parses the flag's text (argparse's own error names the flag when it cannot); ``const``
    makes it a switch that sets that value when given; ``convert`` turns the parsed value into the setting's
    (and raises ``UsageError`` naming the flag when it cannot); ``per_source``: one value per
    ``--sources``; ``exclusive``: flags of the same name here cannot be given together."""

    name: str
    help: str
    group: str
    metavar: str | tuple[str, ...] | None = None
    nargs: int | str | None = None
    type: Callable[[str], Any] | None = None
    choices: Sequence[str] | None = None
    const: Any = UNSET
    convert: Callable[[Any], Any] | None = None
    per_source: bool = False
    exclusive: str | None = None
    aliases: tuple[str, ...] = ()
    required: bool = False

    @property
    def dest(self) -> str:
        """The attribute of the parsed arguments (``--max-frames`` -> ``max_frames``)."""
        return self.name.lstrip("-").replace("-", "_")


def setting(
    default: Any = MISSING,
    *,
    rule: Callable[[Any], str | None],
    flags: Sequence[Flag] = (),
    default_factory: Any = MISSING,
    named_by: str | None = None,
) -> Any:
    """A config field with its rule and its flags; ``named_by``: the flag an error names when the
    value came from a flag that sets another key too (``--conf`` with ``--detections``)."""
    metadata = {RULE: rule, FLAGS: tuple(flags), NAMED_BY: named_by}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def nested_class(f: Field) -> type | None:
    """The config dataclass of a group of settings (``sampler``, ``link``, ``engine``), else None."""
    factory = f.default_factory
    return factory if isinstance(factory, type) and is_dataclass(factory) else None


def declared(cls: type, prefix: str = "") -> Iterator[tuple[str, Field]]:
    """``(key, field)`` of every setting of ``cls`` in field order, the groups' as ``link.min_similarity``
    after the group's own field."""
    for f in fields(cls):
        yield prefix + f.name, f
        inner = nested_class(f)
        if inner is not None:
            yield from declared(inner, f"{prefix}{f.name}.")


def rule_of(f: Field) -> Callable[[Any], str | None]:
    return f.metadata[RULE]


def flags_of(f: Field) -> tuple[Flag, ...]:
    return f.metadata.get(FLAGS, ())


def flag_of(f: Field) -> str | None:
    """The flag an error about this setting names when its value came from the command line."""
    if f.metadata.get(NAMED_BY):
        return f.metadata[NAMED_BY]
    flags = flags_of(f)
    return flags[0].name if flags else None


def add_flags(
    parser: argparse.ArgumentParser, cls: type, groups: Sequence[str], made: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Add the flags of ``cls``'s settings that belong to ``groups`` (in that order) to ``parser``, in
    the argument groups ``made`` (by title) where given, new ones otherwise. Every default is None, so
    that only the flags given override the config file. Returns the argument groups by title."""
    made = dict(made or {})
    for title in groups:
        if title not in made:
            made[title] = parser.add_argument_group(title)
    exclusive: dict[str, Any] = {}
    for _, f in declared(cls):
        for flag in flags_of(f):
            if flag.group not in groups:
                continue
            target = made[flag.group]
            if flag.exclusive:
                if flag.exclusive not in exclusive:
                    exclusive[flag.exclusive] = target.add_mutually_exclusive_group()
                target = exclusive[flag.exclusive]
            target.add_argument(flag.name, *flag.aliases, **_argparse_options(flag))
    return made


def _argparse_options(flag: Flag) -> dict[str, Any]:
    if flag.const is not UNSET:  # given: True (a switch read by another command's parser may default to False)
        return {"action": "store_true", "default": None, "help": flag.help}
    options: dict[str, Any] = {"help": flag.help, "default": None}
    for name in ("metavar", "nargs", "type", "choices"):
        value = getattr(flag, name)
        if value is not None:
            options[name] = value
    if flag.required:
        options["required"] = True
    return options


def flag_overrides(args: argparse.Namespace, cls: type, sources: int) -> dict[str, Any]:
    """The settings the flags in ``args`` set, as ``cls.replace`` overrides (``{"link": {...}}`` for a
    group). A flag the parser does not have sets nothing; one that a command defines itself under the
    same name (``bench --no-progress``) is read alike. A ``per_source`` flag must have one value per
    source (a ``UsageError`` naming it)."""
    over: dict[str, Any] = {}
    for key, f in declared(cls):
        for flag in flags_of(f):
            value = getattr(args, flag.dest, None)
            if flag.const is not UNSET:  # a switch: sets its value when given
                if value:
                    _put(over, key, flag.const)
                continue
            if value is None:
                continue
            if flag.per_source and len(value) != sources:
                raise UsageError(f"{flag.name} has {len(value)} values for {sources} --sources; give one per source")
            _put(over, key, flag.convert(value) if flag.convert else value)
    return over


def _put(over: dict[str, Any], key: str, value: Any) -> None:
    *groups, name = key.split(".")
    for group in groups:
        over = over.setdefault(group, {})
    over[name] = value


def run_flags(cls: type, groups: Sequence[str]) -> dict[str, str]:
    """``{flag: key}`` of every flag of ``groups`` (the declaration's index, for tests and docs)."""
    return {flag.name: key for key, f in declared(cls) for flag in flags_of(f) if flag.group in groups}


__all__ = [
    "Flag",
    "OUTPUT_GROUPS",
    "PIPELINE_GROUPS",
    "add_flags",
    "declared",
    "flag_of",
    "flag_overrides",
    "flags_of",
    "nested_class",
    "rule_of",
    "run_flags",
    "setting",
]
