"""Training configuration: ``base.yaml`` → ``variants/<variant>.yaml`` → ``datasets/<dataset>.yaml`` →
``--set key=value`` overrides.

Mappings merge key by key; lists (``stages``, ``milestones``) are replaced whole. Every key must exist
in ``base.yaml`` (stage entries: in ``stage_defaults``), except inside the free-form mappings
``model.options`` (the variant's builder options, checked by ``create_model``) and a stage's
``losses`` (checked by the loss registry); an unknown key raises ``ConfigError`` naming it.

Values are checked once the config is resolved (:func:`check_values`): types, ranges and the bounds
of ``reidpipe/limits.py``; NaN and infinity never pass. A bad value is a ``ConfigError`` naming the key.

``--set`` keys are dotted paths; values are YAML (``--set stages.0.epochs=2``,
``--set data.input_size=[64,32]``, ``--set model.options.tiny=true``). Inside ``stages`` a path
element may be an index, a stage name (``stages.image.optimizer.lr=1e-5``) or ``*`` for every stage
(``stages.*.epochs=1``).
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from reidpipe import limits
from reidpipe.errors import ConfigError
from reidpipe.yamlfile import load_yaml, read_yaml_file

FREE_FORM = {("model", "options"), ("losses",)}


def _package_yaml(rel: str) -> dict[str, Any] | None:
    ref = resources.files("reidpipe.configs").joinpath(rel)
    if not ref.is_file():
        return None
    data = load_yaml(ref.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {rel} must hold a mapping")
    return data


def available(kind: str) -> list[str]:
    folder = resources.files("reidpipe.configs").joinpath(kind)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file {p} does not exist")
    data = read_yaml_file(p) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping")
    return data


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _check_keys(cfg: Any, template: Any, path: tuple[str, ...], source: str) -> None:
    if not isinstance(cfg, dict) or not isinstance(template, dict):
        return
    for k, v in cfg.items():
        here = path + (str(k),)
        if k not in template:
            known = ", ".join(sorted(map(str, template)))
            raise ConfigError(f"unknown config key {'.'.join(here)!r} (from {source}); known keys here: {known}")
        if here in FREE_FORM or here[-1:] == ("losses",) or here[-2:] == ("model", "options"):
            continue
        if isinstance(template[k], dict) and v is not None and not isinstance(v, dict):
            raise ConfigError(f"config key {'.'.join(here)!r} (from {source}) must be a mapping, got {v!r}")
        _check_keys(v, template[k], here, source)


def validate(cfg: dict, base: dict, source: str) -> None:
    template = {k: v for k, v in base.items()}
    stages = cfg.get("stages")
    _check_keys({k: v for k, v in cfg.items() if k != "stages"}, template, (), source)
    if stages is not None:
        if not isinstance(stages, list):
            raise ConfigError(f"config key 'stages' (from {source}) must be a list of stage mappings")
        for i, st in enumerate(stages):
            if not isinstance(st, dict):
                raise ConfigError(f"config key 'stages.{i}' (from {source}) must be a mapping")
            _check_keys(st, base["stage_defaults"], ("stages", str(i)), source)


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item!r}: bad key {key!r}")
    try:
        value = load_yaml(raw) if raw.strip() != "" else None
    except yaml.YAMLError:
        raise ConfigError(f"--set {item!r}: value {raw!r} is not valid YAML") from None
    return key.split("."), value


def _stage_targets(stages: list, sel: str, item: str) -> list[dict]:
    if sel == "*":
        return list(stages)
    if sel.lstrip("-").isdigit():
        i = int(sel)
        if not -len(stages) <= i < len(stages):
            raise ConfigError(f"--set {item!r}: stage index {i} out of range ({len(stages)} stages)")
        return [stages[i]]
    hits = [s for s in stages if s.get("name") == sel]
    if not hits:
        names = ", ".join(str(s.get("name")) for s in stages)
        raise ConfigError(f"--set {item!r}: no stage named {sel!r}; stages are: {names}")
    return hits


def apply_override(cfg: dict, base: dict, item: str) -> None:
    parts, value = parse_override(item)
    if parts[0] == "stages":
        if len(parts) == 1:
            raise ConfigError(f"--set {item!r}: set a stage field (stages.<index|name|*>.<key>)")
        targets = _stage_targets(cfg.get("stages") or [], parts[1], item)
        prefix: tuple[str, ...] = ("stages", parts[1])
        rest, template = parts[2:], base["stage_defaults"]
        if not rest:
            raise ConfigError(f"--set {item!r}: set a stage field (stages.<index|name|*>.<key>)")
    else:
        targets, rest, template, prefix = [cfg], parts, base, ()
    # key check against the template (free-form below model.options / losses)
    t = template
    for i, k in enumerate(rest):
        here = prefix + tuple(rest[: i + 1])
        if not (isinstance(t, dict) and k in t):
            raise ConfigError(f"--set {item!r}: unknown config key {'.'.join(here)!r}")
        if k == "losses" or tuple(rest[: i + 1]) == ("model", "options"):
            break  # free-form below
        t = t[k]
    for target in targets:
        node = target
        for k in rest[:-1]:
            if not isinstance(node.get(k), dict):
                node[k] = {}
            node = node[k]
        node[rest[-1]] = value


def load_config(
    variant: str | None = None,
    dataset: str | None = None,
    overrides: list[str] | None = None,
    files: list[str | Path] | None = None,
    start: dict | None = None,
) -> dict[str, Any]:
    """The resolved training configuration (a plain dict).

    ``start``: an already resolved config (a run folder's ``config.yaml``) to apply ``overrides`` to,
    instead of merging the package files."""
    base = _package_yaml("base.yaml")
    if base is None:
        raise ConfigError("package config base.yaml is missing (broken installation)")
    if start is not None:
        cfg = copy.deepcopy(start)
        validate(cfg, base, "the saved run config")
        for item in overrides or []:
            apply_override(cfg, base, item)
        validate(cfg, base, "--set")
        return check_values(cfg)
    cfg = copy.deepcopy(base)
    layers: list[tuple[str, dict]] = []
    if variant:
        v = _package_yaml(f"variants/{variant}.yaml")
        if v is None:
            raise ConfigError(
                f"no config for variant {variant!r}; configs exist for: {', '.join(available('variants'))}"
            )
        layers.append((f"variants/{variant}.yaml", v))
    if dataset:
        d = _package_yaml(f"datasets/{dataset}.yaml")
        if d is None:
            raise ConfigError(
                f"no config for dataset {dataset!r}; configs exist for: {', '.join(available('datasets'))}"
            )
        layers.append((f"datasets/{dataset}.yaml", d))
    for f in files or []:
        layers.append((str(f), read_yaml(f)))
    for source, layer in layers:
        validate(layer, base, source)
        cfg = deep_merge(cfg, layer)
    if variant and not cfg["model"].get("variant"):
        cfg["model"]["variant"] = variant  # a recipe file (e.g. clipreid_vit.yaml) may name its model itself
    if dataset:
        cfg["data"]["dataset"] = dataset
    cfg["stages"] = [deep_merge(base["stage_defaults"], s) for s in cfg.get("stages") or []]
    for item in overrides or []:
        apply_override(cfg, base, item)
    validate(cfg, base, "--set")
    return check_values(cfg)


def _value_rules() -> tuple[dict[str, Any], dict[str, Any]]:
    """The rule of each value of a resolved config (dotted paths), and of each stage's values; keys
    without a rule are checked where they are used (``model.options`` by the variant's builder, a
    stage's ``name`` and ``losses`` by the model)."""
    from reidpipe.pipeline.validate import boolean, choice, device, integer, number, numbers

    epochs = integer(1, limits.MAX_EPOCHS)
    batch = integer(1, limits.MAX_BATCH)
    unit = number(0.0, 1.0)
    lr = number(0.0, 10.0, strict_lo=True)
    top = {
        "seed": integer(0, limits.MAX_SEED),
        "device": device,
        "amp": boolean,
        "deterministic": boolean,
        "stop_after_epochs": integer(1, limits.MAX_EPOCHS, optional=True),
        "threads": integer(1, 256, optional=True),
        "channels_last": boolean,
        "eval.before": boolean,
        "export.onnx": boolean,
        "data.input_size": numbers(2, integer(1, limits.MAX_REID_SIDE), f"integers from 1 to {limits.MAX_REID_SIDE}"),
        "data.workers": integer(0, limits.MAX_WORKERS),
        "data.mix": _mix_entries,
        "data.test_batch_size": batch,
        "eval.every": epochs,
        "eval.rerank": boolean,
        "eval.metric": choice("euclidean", "cosine"),
        "eval.rerank_k1": integer(1, limits.MAX_KNN),
        "eval.rerank_k2": integer(1, limits.MAX_KNN),
        "eval.rerank_lambda": unit,
        "eval.max_rank": integer(1, limits.MAX_KNN),
        "log.every": integer(1),
        "log.tensorboard": boolean,
        "log.progress": boolean,
        "checkpoint.keep_epochs": boolean,
    }
    stage = {
        "epochs": epochs,
        "sampler": choice("pk", "random"),
        "p": batch,
        "k": batch,
        "batch_size": batch,
        "eval": boolean,
        "grad_clip": number(0.0, optional=True, strict_lo=True),
        "optimizer.name": choice("adam", "adamw", "sgd"),
        "optimizer.lr": lr,
        "optimizer.weight_decay": unit,
        "optimizer.weight_decay_bias": unit,
        "optimizer.bias_lr_factor": number(0.0, 100.0),
        "optimizer.momentum": unit,
        "optimizer.betas": numbers(2, number(0.0, 0.9999), "numbers from 0 to 0.9999"),
        "optimizer.loss_lr": number(0.0, 10.0, optional=True, strict_lo=True),
        "optimizer.loss_grad_by_weight": boolean,
        "schedule.name": choice("multistep", "cosine", "constant"),
        "schedule.warmup_epochs": integer(0, limits.MAX_EPOCHS),
        "schedule.warmup_factor": number(0.0, 1.0, strict_lo=True),
        "schedule.warmup_lr": number(0.0, 10.0, optional=True),
        "schedule.milestones": _milestones,
        "schedule.gamma": number(0.0, 10.0, strict_lo=True),
        "schedule.min_lr": number(0.0, 10.0),
        "augment.flip": unit,
        "augment.pad": integer(0, limits.MAX_REID_SIDE),
        "augment.erasing": unit,
    }
    return top, stage


def _milestones(v: Any) -> str | None:
    ok = isinstance(v, list) and all(isinstance(m, int) and not isinstance(m, bool) and m >= 0 for m in v)
    return (
        None
        if ok and all(m <= limits.MAX_EPOCHS for m in v)
        else f"must be a list of epochs from 0 to {limits.MAX_EPOCHS}"
    )


def _mix_entries(v: Any) -> str | None:
    """``data.mix``: a list of ``{dataset: NAME, root: PATH, ids: N or null, seed: S}`` (the reader
    checks NAME and PATH)."""
    rule = "must be a list of {dataset: NAME, root: PATH, ids: N or null, seed: S} mappings"
    if not isinstance(v, list) or len(v) > limits.MAX_MIX:
        return f"{rule} (at most {limits.MAX_MIX})"
    for entry in v:
        if not isinstance(entry, dict) or set(entry) - {"dataset", "root", "ids", "seed"}:
            return rule
        if not all(isinstance(entry.get(k), str) and entry[k] for k in ("dataset", "root")):
            return rule
        ids = entry.get("ids")
        if ids is not None and (
            isinstance(ids, bool) or not isinstance(ids, int) or not 1 <= ids <= limits.MAX_CLASSES
        ):
            return f"{rule}; ids from 1 to {limits.MAX_CLASSES}"
        seed = entry.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= limits.MAX_SEED:
            return f"{rule}; seed from 0 to {limits.MAX_SEED}"
    return None


_MISSING = object()


def _at(node: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def check_values(cfg: dict[str, Any]) -> dict[str, Any]:
    """Raise ``ConfigError`` naming the first value of the resolved ``cfg`` that breaks its rule
    (``stages.main.epochs: must be an integer from 1 to 100000, got 'two'``); returns ``cfg``."""
    top, stage = _value_rules()
    checks = [(key, rule, _at(cfg, key)) for key, rule in top.items()]
    stages = [(f"stages.{_stage_name(st, i)}", st) for i, st in enumerate(cfg.get("stages") or [])]
    for where, st in stages:
        checks += [(f"{where}.{key}", rule, _at(st, key)) for key, rule in stage.items()]
    for key, rule, value in checks:
        problem = None if value is _MISSING else rule(value)
        if problem:
            raise ConfigError(f"config value {key}: {problem}, got {value!r}")
    for where, st in stages:
        if st.get("sampler") == "pk" and st.get("p", 1) * st.get("k", 1) > limits.MAX_BATCH:
            raise ConfigError(f"{where}: p x k = {st['p'] * st['k']} images per batch; at most {limits.MAX_BATCH}")
    return cfg


def _stage_name(st: dict, i: int) -> str:
    return st["name"] if isinstance(st.get("name"), str) else str(i)


def dump(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)
