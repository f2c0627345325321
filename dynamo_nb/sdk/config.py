"""A service graph's configuration (seed §7.3): a YAML file or a dict, per service class name.

::

    Common:                      # shared values, taken by a service that lists them in common-configs
      model: my-model
    VllmWorker:
      enable-prefix-caching: true          # given to the service as self.config, keys as written
      common-configs: [model]
      ServiceArgs:
        workers: 4                         # overrides @service(workers=)
        resources: {gpu: 1}                # overrides @service(resources=)

Command-line overrides (``--VllmWorker.model=other``, values read as YAML scalars) win over the file. Every
problem is a :class:`~dynamo_nb.errors.ServiceConfigError` naming the source, the key and what was expected,
raised before anything starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..errors import ServiceConfigError

__all__ = ["ServiceSettings", "ConfigSource", "load_config", "parse_override", "settings_for", "COMMON",
           "SERVICE_ARGS", "COMMON_CONFIGS"]

COMMON = "Common"
SERVICE_ARGS = "ServiceArgs"
COMMON_CONFIGS = "common-configs"


@dataclass
class ConfigSource:
    """The parsed sections, with where each service's settings came from (for error messages)."""

    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "dict"
    origins: dict[str, str] = field(default_factory=dict)  # "Service.key" → "--Service.key" for overrides

    def where(self, service: str, key: str = "") -> str:
        return self.origins.get(f"{service}.{key}", self.source) if key else self.source


@dataclass(frozen=True)
class ServiceSettings:
    """What one service runs with: ``config`` (its ``self.config``), ``workers`` and ``resources``."""

    config: dict[str, Any]
    workers: int
    resources: dict[str, Any]

    @property
    def gpus(self) -> int:
        return int(self.resources.get("gpu", 0) or 0)


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ServiceConfigError(str(path), "", f"cannot read it ({exc.strerror or exc})",
                                 "a readable YAML file") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ServiceConfigError(str(path), "", f"malformed YAML{at}: {problem}",
                                 "a YAML mapping of service class names to their settings") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``--VllmWorker.ServiceArgs.workers=4`` → ``(["VllmWorker", "ServiceArgs", "workers"], 4)``.

    >>> parse_override("--VllmWorker.enable-prefix-caching=false")
    (['VllmWorker', 'enable-prefix-caching'], False)
    >>> parse_override("--Frontend.model=org/model-1.5")
    (['Frontend', 'model'], 'org/model-1.5')
    """
    import yaml

    body = text[2:] if text.startswith("--") else text
    key, sep, raw = body.partition("=")
    path = key.split(".")
    if not sep or len(path) < 2 or not all(path):
        raise ServiceConfigError(text, "", "not a service override", "--Service.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return path, value


def load_config(config: Mapping[str, Any] | str | Path | None = None, overrides: Iterable[str] = ()) -> ConfigSource:
    """Read ``config`` (a dict, or a path to YAML) and apply ``--Service.key=value`` overrides."""
    if config is None:
        data: Any = {}
        source = "no config"
    elif isinstance(config, (str, Path)):
        source = str(config)
        data = _read_yaml(Path(config))
        if data is None:
            data = {}
    elif isinstance(config, Mapping):
        source = "config dict"
        data = config
    else:
        raise TypeError(f"config must be a dict or a path to a YAML file, got {type(config).__name__}")
    if not isinstance(data, Mapping):
        raise ServiceConfigError(source, "", f"the top level is a {type(data).__name__}",
                                 "a mapping of service class names to their settings")
    sections: dict[str, dict[str, Any]] = {}
    for name, body in data.items():
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            raise ServiceConfigError(source, str(name), f"is a {type(body).__name__}",
                                     "a mapping of settings (key: value)")
        sections[str(name)] = dict(body)
    result = ConfigSource(sections, source)
    for text in overrides:
        path, value = parse_override(text)
        where = text.partition("=")[0]
        target = sections.setdefault(path[0], {})
        for part in path[1:-1]:
            nxt = target.get(part)
            if not isinstance(nxt, dict):
                nxt = target[part] = {} if nxt is None else _not_mapping(where, part, nxt)
            target = nxt
        target[path[-1]] = value
        result.origins[f"{path[0]}.{path[1]}"] = where
    return result


def _not_mapping(where: str, key: str, value: Any) -> dict[str, Any]:
    raise ServiceConfigError(where, key, f"is {value!r}, not a mapping", "a mapping to set a key inside")


def _resources(value: Any, where: str, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ServiceConfigError(where, key, f"got {value!r}", "a mapping such as {gpu: 1, cpu: '10'}")
    gpu = value.get("gpu", 0)
    if isinstance(gpu, bool) or not isinstance(gpu, int) or gpu < 0:
        raise ServiceConfigError(where, f"{key}.gpu", f"got {gpu!r}", "a whole number of GPUs, 0 or more")
    return dict(value)


def settings_for(services: Sequence[Any], config: ConfigSource) -> dict[str, ServiceSettings]:
    """Each service's settings (``services`` are :class:`~dynamo_nb.sdk.decorators.ServiceSpec`), checked."""
    known = {s.name: s for s in services}
    for name in config.sections:
        if name != COMMON and name not in known:
            raise ServiceConfigError(config.where(name), name, "is not a service of this graph",
                                     f"{COMMON!r} or one of: {', '.join(sorted(known))}")
    common = config.sections.get(COMMON, {})
    out: dict[str, ServiceSettings] = {}
    for name, spec in known.items():
        section = dict(config.sections.get(name, {}))
        args = section.pop(SERVICE_ARGS, None) or {}
        if not isinstance(args, Mapping):
            raise ServiceConfigError(config.where(name, SERVICE_ARGS), f"{name}.{SERVICE_ARGS}", f"got {args!r}",
                                     "a mapping with workers: and resources:")
        wanted = section.pop(COMMON_CONFIGS, None) or []
        if isinstance(wanted, str) or not isinstance(wanted, list):
            raise ServiceConfigError(config.where(name, COMMON_CONFIGS), f"{name}.{COMMON_CONFIGS}",
                                     f"got {wanted!r}", f"a list of keys of the {COMMON} section")
        merged: dict[str, Any] = {}
        for key in wanted:
            if key not in common:
                have = ", ".join(map(str, common)) or "nothing"
                raise ServiceConfigError(config.where(name, COMMON_CONFIGS), f"{name}.{COMMON_CONFIGS}",
                                         f"{key!r} is not in {COMMON} (it has: {have})", f"a key of {COMMON}")
            merged[key] = common[key]
        merged.update(section)
        workers = args.get("workers", spec.workers)
        where = config.where(name, SERVICE_ARGS)
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ServiceConfigError(where, f"{name}.{SERVICE_ARGS}.workers", f"got {workers!r}",
                                     "a positive integer")
        resources = _resources(args.get("resources", spec.resources), where, f"{name}.{SERVICE_ARGS}.resources")
        out[name] = ServiceSettings(merged, workers, resources)
    return out
