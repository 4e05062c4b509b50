"""A jterator project on disk: ``pipeline.yaml`` and ``handles/<module>.handles.yaml``.

``pipeline.yaml``::

    input:
      channels: [{name: DAPI, correct: true}]     # images loaded per site
      objects: []                                   # object types from earlier runs
    pipeline:
      - source: smooth.py                         # a jtmodules module, or a path with '/'
        handles: handles/smooth.handles.yaml      # module name = file name w/o .handles.yaml
        active: true
    output:
      objects: [{name: Nuclei, as_polygons: true}]

:meth:`Project.load` reads and checks the files; :meth:`Project.check`
checks that the pipeline fits together (modules exist, versions and
signatures match their handles, every input key is produced before it is
used, types agree, no key is produced twice). Every message names the file,
module and handle at fault.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tmlib.errors import InvalidInputError
from tmlib.jterator.handles import HandleType, get_handle_type
from tmlib.lazy import lazy_import

yaml = lazy_import("yaml")

PIPELINE_FILE = "pipeline.yaml"
HANDLES_SUFFIX = ".handles.yaml"
#: directories with modules of users (``:``-separated), searched before jtmodules
MODULES_PATH_VARIABLE = "TMAPS_JTMODULES_PATH"


class PipelineError(InvalidInputError):
    """A project that cannot run: the message says where and why."""


@dataclass
class Handle:
    """One input or output of a module, as its handles file describes it."""

    name: str
    type: HandleType
    key: str | None = None
    value: Any = None
    options: list | None = None
    help: str = ""
    #: Measurement outputs: names of the module's handles they refer to
    objects: str | None = None
    objects_ref: str | None = None
    channel_ref: str | None = None


@dataclass
class Module:
    """A module of a pipeline: where its code and its handles are."""

    name: str
    source: str
    handles_file: Path
    active: bool
    version: str
    inputs: list[Handle]
    outputs: list[Handle]
    _code: types.ModuleType | None = field(default=None, repr=False)

    def where(self, handle: str | None = None) -> str:
        return f"module {self.name}" + (f", handle {handle}" if handle else "")

    def code(self, project_location: Path) -> types.ModuleType:
        """The imported module (``VERSION``, ``main``).

        Raises
        ------
        PipelineError
            When the source cannot be found or imported.
        """
        if self._code is None:
            self._code = load_module(self.source, project_location, self.where())
        return self._code


@dataclass
class ChannelInput:
    name: str
    correct: bool = True


@dataclass
class ObjectsOutput:
    name: str
    as_polygons: bool = True


@dataclass
class Project:
    """A pipeline and its modules' handles."""

    location: Path
    channels: list[ChannelInput]
    objects: list[str]
    modules: list[Module]
    output_objects: list[ObjectsOutput]

    @property
    def active_modules(self) -> list[Module]:
        return [m for m in self.modules if m.active]

    # --------------------------------------------------------------- reading

    @classmethod
    def load(cls, location: str | os.PathLike) -> Project:
        """Read a project.

        Raises
        ------
        PipelineError
            When a file is missing or malformed.
        """
        location = Path(location)
        path = location / PIPELINE_FILE
        data = _read_yaml(path)
        where = str(path)
        if not isinstance(data, dict):
            raise PipelineError(f"{where}: expected keys 'input', 'pipeline' and 'output'")
        inputs = _mapping(data.get("input"), f"{where}: input")
        channels = [
            ChannelInput(
                str(_required(c, "name", f"{where}: input channel")), bool(c.get("correct", True))
            )  # fmt: skip
            for c in _items(inputs.get("channels"), f"{where}: input channels")
        ]
        objects = [
            str(_required(o, "name", f"{where}: input object"))
            for o in _items(inputs.get("objects"), f"{where}: input objects")
        ]
        modules = []
        for i, item in enumerate(_items(data.get("pipeline"), f"{where}: pipeline"), start=1):
            place = f"{where}: pipeline entry {i}"
            source = str(_required(item, "source", place))
            handles = Path(str(_required(item, "handles", place)))
            handles = handles if handles.is_absolute() else location / handles
            modules.append(_load_module_handles(source, handles, bool(item.get("active", True))))
        names = [m.name for m in modules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise PipelineError(f"{where}: module name {twice[0]!r} is used twice")
        outputs = _mapping(data.get("output"), f"{where}: output")
        output_objects = [
            ObjectsOutput(
                str(_required(o, "name", f"{where}: output object")),
                bool(o.get("as_polygons", True)),
            )  # fmt: skip
            for o in _items(outputs.get("objects"), f"{where}: output objects")
        ]
        return cls(location, channels, objects, modules, output_objects)

    # -------------------------------------------------------------- checking

    def check(self, channel_names: list[str] | None = None) -> None:
        """Check that the pipeline fits together.

        Parameters
        ----------
        channel_names : list of str, optional
            The experiment's channels; input channels must be among them.

        Raises
        ------
        PipelineError
        """
        where = str(self.location / PIPELINE_FILE)
        if not self.active_modules:
            raise PipelineError(f"{where}: the pipeline has no active module")
        available: dict[str, str] = {}  # key -> type name of what produces it
        for channel in self.channels:
            if channel_names is not None and channel.name not in channel_names:
                raise PipelineError(
                    f"{where}: input channel {channel.name!r} is not a channel of the "
                    f"experiment ({', '.join(channel_names) or 'none'})"
                )
            available[channel.name] = "IntensityImage"
        for name in self.objects:
            available[name] = "SegmentedObjects"
        for module in self.active_modules:
            self._check_module(module, available)
        for output in self.output_objects:
            if output.name in self.objects or available.get(output.name) != "SegmentedObjects":
                raise PipelineError(
                    f"{where}: output objects {output.name!r} are not registered by any module "
                    "(a SegmentedObjects output with that key)"
                )

    def _check_module(self, module: Module, available: dict[str, str]) -> None:
        code = module.code(self.location)
        version = getattr(code, "VERSION", None)
        if version != module.version:
            raise PipelineError(
                f"{module.where()}: handles version {module.version} does not match the "
                f"module's VERSION {version} ({module.handles_file})"
            )
        main = getattr(code, "main", None)
        if not callable(main):
            raise PipelineError(f"{module.where()}: the module has no main function")
        parameters = list(inspect.signature(main).parameters)
        names = [h.name for h in module.inputs]
        if set(parameters) != set(names):
            missing = sorted(set(parameters) - set(names))
            extra = sorted(set(names) - set(parameters))
            detail = (f"main() has no parameter {extra[0]!r}" if extra
                      else f"no input handle for main()'s parameter {missing[0]!r}")  # fmt: skip
            raise PipelineError(f"{module.where()}: {detail} ({module.handles_file})")
        for handle in module.inputs:
            if handle.type.is_pipe:
                produced = available.get(handle.key or "")
                if produced is None:
                    raise PipelineError(
                        f"{module.where(handle.name)}: key {handle.key!r} is neither an input "
                        "channel or object type nor an output of an earlier active module"
                    )
                if produced not in handle.type.accepts:
                    raise PipelineError(
                        f"{module.where(handle.name)}: expects {handle.type.name} but key "
                        f"{handle.key!r} is {produced}"
                    )
        for handle in module.outputs:
            if handle.type.is_pipe:
                if handle.key in available:
                    raise PipelineError(
                        f"{module.where(handle.name)}: key {handle.key!r} is produced twice "
                        "(keys and object names must be unique in a pipeline)"
                    )
                available[handle.key] = handle.type.name
            if handle.type.kind == "measurement":
                refs = {h.name: h for h in module.inputs + module.outputs if h.type.is_pipe}
                for attribute in ("objects", "objects_ref", "channel_ref"):
                    ref = getattr(handle, attribute)
                    if ref is None and attribute != "channel_ref":
                        raise PipelineError(f"{module.where(handle.name)}: needs '{attribute}'")
                    if ref is not None and ref not in refs:
                        raise PipelineError(
                            f"{module.where(handle.name)}: {attribute} {ref!r} is not an image "
                            "or objects handle of the module"
                        )
                if refs[handle.objects].type.name != "SegmentedObjects":
                    raise PipelineError(
                        f"{module.where(handle.name)}: objects {handle.objects!r} must be a "
                        "SegmentedObjects handle"
                    )


# ------------------------------------------------------------------ helpers


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PipelineError(f"{path} does not exist") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise PipelineError(f"cannot parse {path}{at}: {getattr(err, 'problem', err)}") from None


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PipelineError(f"{where}: expected a mapping")
    return value


def _items(value: Any, where: str) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise PipelineError(f"{where}: expected a list of mappings")
    return value


def _required(item: dict, key: str, where: str) -> Any:
    if item.get(key) in (None, ""):
        raise PipelineError(f"{where}: '{key}' is missing")
    return item[key]


def _handle(raw: Any, where: str, output: bool) -> Handle:
    if not isinstance(raw, dict) or not raw.get("name") or not raw.get("type"):
        raise PipelineError(f"{where}: every handle needs a 'name' and a 'type'")
    place = f"{where}, handle {raw['name']}"
    try:
        kind = get_handle_type(str(raw["type"]))
    except KeyError as err:
        raise PipelineError(f"{place}: {err.args[0]}") from None
    handle = Handle(
        name=str(raw["name"]),
        type=kind,
        key=None if raw.get("key") is None else str(raw["key"]),
        value=raw.get("value"),
        options=raw.get("options"),
        help=str(raw.get("help", "")),
        objects=raw.get("objects"),
        objects_ref=raw.get("objects_ref"),
        channel_ref=raw.get("channel_ref"),
    )
    if kind.is_pipe and not handle.key:
        raise PipelineError(f"{place}: a {kind.name} handle needs a 'key'")
    if kind.kind == "constant" and not output:
        if handle.value is not None:
            problem = kind.check(handle.value)
            if problem:
                raise PipelineError(f"{place}: {problem}")
        if handle.options is not None and handle.value not in handle.options:
            raise PipelineError(
                f"{place}: value {handle.value!r} is not one of the options {handle.options}"
            )
    if not output and kind.kind in ("measurement", "figure"):
        raise PipelineError(f"{place}: {kind.name} can only be an output")
    return handle


def _load_module_handles(source: str, path: Path, active: bool) -> Module:
    if not path.name.endswith(HANDLES_SUFFIX):
        raise PipelineError(f"{path}: a handles file must be named <module>{HANDLES_SUFFIX}")
    name = path.name[: -len(HANDLES_SUFFIX)]
    data = _read_yaml(path)
    where = f"module {name} ({path})"
    if not isinstance(data, dict) or "version" not in data:
        raise PipelineError(f"{where}: expected keys 'version', 'input' and 'output'")
    inputs = [_handle(h, f"module {name}", False) for h in data.get("input") or []]
    outputs = [_handle(h, f"module {name}", True) for h in data.get("output") or []]
    return Module(name, source, path, active, str(data["version"]), inputs, outputs)


def modules_path() -> list[Path]:
    """User module directories from ``TMAPS_JTMODULES_PATH``."""
    value = os.environ.get(MODULES_PATH_VARIABLE, "")
    return [Path(p) for p in value.split(os.pathsep) if p]


def load_module(source: str, project_location: Path, where: str) -> types.ModuleType:
    """Import a module's code.

    `source` with a ``/`` is a file path (relative to the project); otherwise
    the file name is looked up in the ``TMAPS_JTMODULES_PATH`` directories and
    then in the :mod:`jtmodules` package.

    Raises
    ------
    PipelineError
    """
    path: Path | None = None
    if "/" in source:
        path = Path(source) if Path(source).is_absolute() else project_location / source
    else:
        for directory in modules_path():
            if (directory / source).is_file():
                path = directory / source
                break
    if path is not None:
        if not path.is_file():
            raise PipelineError(f"{where}: module source {path} does not exist")
        spec = importlib.util.spec_from_file_location(f"jtuser_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        code = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(code)
        except Exception as err:
            raise PipelineError(f"{where}: importing {path} failed: {err}") from err
        return code
    name = source[:-3] if source.endswith(".py") else source
    if not name.isidentifier():
        raise PipelineError(f"{where}: invalid module source {source!r}")
    try:
        return importlib.import_module(f"jtmodules.{name}")
    except ModuleNotFoundError as err:
        if err.name == f"jtmodules.{name}":
            raise PipelineError(
                f"{where}: no module {source!r} in jtmodules or in {MODULES_PATH_VARIABLE}"
            ) from None
        raise
