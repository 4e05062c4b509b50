"""Workflow descriptions: which stages and steps run, with which arguments.

Stored as YAML in ``<experiment>/workflow/workflow_description.yaml``::

    type: canonical
    stages:
      - name: image_conversion
        mode: sequential          # or parallel; default sequential
        active: true              # default true
        steps:
          - name: metaextract
            batch_args: [{name: batch_size, value: 100}]   # a mapping works too
            submission_args: [{name: memory, value: 4000}]

A missing file is replaced by the default description of the experiment's
workflow type (made of the steps this installation has).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tmlib.errors import InvalidInputError
from tmlib.lazy import lazy_import
from tmlib.workflow import args as arguments
from tmlib.workflow.step import get_step, step_names

yaml = lazy_import("yaml")

#: stages of each workflow type, in order, with their steps
WORKFLOW_TYPES: dict[str, list[tuple[str, list[str]]]] = {
    "canonical": [
        ("image_conversion", ["metaextract", "metaconfig", "imextract"]),
        ("image_preprocessing", ["corilla"]),
        ("pyramid_creation", ["illuminati"]),
        ("image_analysis", ["jterator"]),
    ],
    "multiplexing": [
        ("image_conversion", ["metaextract", "metaconfig", "imextract"]),
        ("image_preprocessing", ["corilla", "align"]),
        ("pyramid_creation", ["illuminati"]),
        ("image_analysis", ["jterator"]),
    ],
}

#: stages a stage needs to have run before it
STAGE_DEPENDENCIES: dict[str, set[str]] = {
    "image_conversion": set(),
    "image_preprocessing": {"image_conversion"},
    "pyramid_creation": {"image_conversion", "image_preprocessing"},
    "image_analysis": {"image_conversion", "image_preprocessing"},
}

#: batch arguments of default descriptions that differ from the steps' own
#: defaults: corilla runs before the pyramids, so clip the display window to its
#: percentiles (the full 16-bit range shows most images nearly black)
DEFAULT_BATCH_ARGS: dict[str, dict[str, dict[str, Any]]] = {
    "canonical": {"illuminati": {"clip": True}},
    "multiplexing": {"illuminati": {"clip": True, "align": True}},
}

STAGE_MODES = ("sequential", "parallel")
FILENAME = "workflow_description.yaml"


def _list(value: Any, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInputError(f"{what} must be a list, got {value!r}")
    return value


def _pairs(value: Any, where: str) -> dict[str, Any]:
    """Arguments given as ``[{name, value}, ...]`` or as a mapping."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        out = {}
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise InvalidInputError(
                    f"{where}: each argument needs a 'name' (a string) and a 'value'"
                )
            out[item["name"]] = item.get("value")
        return out
    raise InvalidInputError(f"{where}: expected a list of {{name, value}} or a mapping")


@dataclass
class StepDescription:
    """A step and its arguments (validated against the step's declarations)."""

    name: str
    active: bool = True
    batch_args: dict[str, Any] = field(default_factory=dict)
    submission_args: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        step = get_step(self.name)
        where = f"step {self.name}"
        try:
            self.batch_args = arguments.parse(step.batch_args, self.batch_args)
            self.submission_args = arguments.parse(arguments.SUBMISSION_ARGS, self.submission_args)
            arguments.walltime_seconds(self.submission_args["duration"])
        except InvalidInputError as err:
            raise InvalidInputError(f"{where}: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "active": self.active,
            "batch_args": [{"name": k, "value": v} for k, v in self.batch_args.items()],
            "submission_args": [{"name": k, "value": v} for k, v in self.submission_args.items()],
        }


@dataclass
class StageDescription:
    """A stage: steps run one after the other (sequential) or together (parallel)."""

    name: str
    steps: list[StepDescription]
    mode: str = "sequential"
    active: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mode": self.mode,
            "active": self.active,
            "steps": [s.to_dict() for s in self.steps],
        }


@dataclass
class WorkflowDescription:
    """The stages of an experiment's workflow."""

    type: str
    stages: list[StageDescription]

    @classmethod
    def default(cls, workflow_type: str = "canonical") -> WorkflowDescription:
        """The stages of `workflow_type` whose steps this installation has."""
        known = step_names()
        if workflow_type not in WORKFLOW_TYPES:
            raise InvalidInputError(
                f"unknown workflow type {workflow_type!r}; choose one of "
                f"{', '.join(WORKFLOW_TYPES)}"
            )
        defaults = DEFAULT_BATCH_ARGS.get(workflow_type, {})
        stages = [
            StageDescription(
                name, [StepDescription(s, batch_args=dict(defaults.get(s, {}))) for s in steps]
            )
            for name, steps in WORKFLOW_TYPES[workflow_type]
            if all(s in known for s in steps)
        ]
        description = cls(workflow_type, stages)
        description.validate()
        return description

    @classmethod
    def from_dict(cls, data: Any) -> WorkflowDescription:
        """Build and validate a description from parsed YAML.

        Raises
        ------
        InvalidInputError
            With a message that says which stage or step is wrong and why.
        """
        if not isinstance(data, dict) or "type" not in data or "stages" not in data:
            raise InvalidInputError("a workflow description needs 'type' and 'stages'")
        stages = []
        for raw_stage in _list(data["stages"], "'stages'"):
            if not isinstance(raw_stage, dict) or not isinstance(raw_stage.get("name"), str):
                raise InvalidInputError("every stage needs a 'name' (a string)")
            steps = []
            for raw_step in _list(raw_stage.get("steps"), f"stage {raw_stage['name']}: 'steps'"):
                if not isinstance(raw_step, dict) or not isinstance(raw_step.get("name"), str):
                    raise InvalidInputError(
                        f"stage {raw_stage['name']}: every step needs a 'name' (a string)"
                    )
                where = f"step {raw_step['name']}"
                steps.append(
                    StepDescription(
                        name=raw_step["name"],
                        active=bool(raw_step.get("active", True)),
                        batch_args=_pairs(raw_step.get("batch_args"), where),
                        submission_args=_pairs(raw_step.get("submission_args"), where),
                    )
                )
            stages.append(
                StageDescription(
                    name=raw_stage["name"],
                    steps=steps,
                    mode=raw_stage.get("mode", "sequential"),
                    active=bool(raw_stage.get("active", True)),
                )
            )
        description = cls(str(data["type"]), stages)
        description.validate()
        return description

    def validate(self) -> None:
        """Check names, order and dependencies (see the reference §3.2).

        Raises
        ------
        InvalidInputError
        """
        if self.type not in WORKFLOW_TYPES:
            raise InvalidInputError(
                f"unknown workflow type {self.type!r}; choose one of {', '.join(WORKFLOW_TYPES)}"
            )
        allowed = dict(WORKFLOW_TYPES[self.type])
        seen_stages: list[str] = []
        seen_steps: set[str] = set()
        for stage in self.stages:
            if stage.name not in allowed:
                raise InvalidInputError(
                    f"unknown stage {stage.name!r} for a {self.type} workflow; "
                    f"stages: {', '.join(allowed)}"
                )
            if stage.name in seen_stages:
                raise InvalidInputError(f"stage {stage.name} appears twice")
            if stage.mode not in STAGE_MODES:
                raise InvalidInputError(f"stage {stage.name}: mode must be sequential or parallel")
            for earlier in seen_stages:
                if stage.name in STAGE_DEPENDENCIES.get(earlier, set()):
                    raise InvalidInputError(
                        f"stage {stage.name} must come before stage {earlier}, which needs it"
                    )
            stage_steps = [s.name for s in stage.steps]
            for step in stage.steps:
                if step.name not in allowed[stage.name]:
                    raise InvalidInputError(
                        f"stage {stage.name} has no step {step.name!r}; "
                        f"steps: {', '.join(allowed[stage.name])}"
                    )
                if step.name in seen_steps:
                    raise InvalidInputError(f"step {step.name} appears twice")
                seen_steps.add(step.name)
                step.validate()
                for needed in get_step(step.name).requires:
                    if (
                        needed in allowed[stage.name]
                        and needed not in stage_steps[: stage_steps.index(step.name)]
                    ):
                        raise InvalidInputError(
                            f"step {step.name} needs step {needed} before it in stage {stage.name}"
                        )
            seen_stages.append(stage.name)

    def active(self) -> WorkflowDescription:
        """A copy without inactive stages and steps."""
        return WorkflowDescription(
            self.type,
            [
                StageDescription(s.name, [t for t in s.steps if t.active], s.mode, True)
                for s in self.stages
                if s.active and any(t.active for t in s.steps)
            ],
        )

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "stages": [s.to_dict() for s in self.stages]}

    def save(self, path: str | os.PathLike) -> None:
        """Write the YAML file (via a temporary name)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> WorkflowDescription:
        """Read and validate a YAML file.

        Raises
        ------
        InvalidInputError
            When the file cannot be parsed or is invalid (the message names it).
        """
        try:
            data = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise InvalidInputError(f"cannot parse {path}{where}: {problem}") from None
        try:
            return cls.from_dict(data)
        except InvalidInputError as err:
            raise InvalidInputError(f"{path}: {err}") from None
