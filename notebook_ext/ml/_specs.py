"""The resume spec: what a job with checkpoints keeps in the history (its
record's ``resume``) so that `notebook_ext.resume` can go on with it after a
crash, in any later session. Typed here, JSON in the history, with a
version: a spec written by a newer notebook_ext is refused in one line, one
from before versions (2026 releases up to the third wave) reads as version 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Union

SPEC_VERSION = 1

#: how often checkpoints are written: (every so many steps, every so many seconds), one of them set
Every = tuple[Union[int, None], Union[float, None]]


@dataclass(frozen=True)
class TrainSpec:
    """A training job's checkpoint: where it is, the data it was made from
    (their fingerprints), how often it is written, and the notebook
    variables the job was started with (for ``%resume``)."""

    path: str
    fingerprint: Mapping[str, Any]
    every: Every
    executor: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)

    kind = "train"


@dataclass(frozen=True)
class PreprocessSpec:
    """A preprocessing job's log of finished items (and kept results): the
    items' fingerprint and count, the function and sink by name (a resume
    finds them in the notebook), whether it ran a pipeline, and the options
    of its one stage."""

    path: str
    fingerprint: Mapping[str, Any]
    every: Every
    total: int | None = None
    func: str | None = None
    into: str | None = None
    sink: bool = False
    pipeline: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict)

    kind = "preprocess"


ResumeSpec = Union[TrainSpec, PreprocessSpec]


def spec_json(spec: ResumeSpec) -> dict[str, Any]:
    """The spec as the history keeps it (JSON)."""
    data: dict[str, Any] = {"version": SPEC_VERSION, "kind": spec.kind, "path": spec.path,
                            "fingerprint": dict(spec.fingerprint), "every": list(spec.every),
                            "vars": dict(spec.variables)}
    if isinstance(spec, TrainSpec):
        data["executor"] = spec.executor
    else:
        data.update(total=spec.total, func=spec.func, into=spec.into, sink=spec.sink, pipeline=spec.pipeline,
                    options=dict(spec.options))
    return data


def read_spec(data: Mapping[str, Any] | None) -> ResumeSpec | None:
    """A spec from the history's JSON (None for none); `ValueError` in one
    line for one this version cannot read."""
    if not data:
        return None
    version = data.get("version", 1)
    if not isinstance(version, int) or version > SPEC_VERSION:
        raise ValueError(f"its resume spec is version {version!r}, made by a newer notebook_ext "
                         f"(this one reads up to {SPEC_VERSION}); resume it with that version")
    try:
        steps, seconds = data["every"]
        common: dict[str, Any] = {"path": str(data["path"]), "fingerprint": dict(data.get("fingerprint") or {}),
                  "every": (steps, seconds), "variables": dict(data.get("vars") or {})}
        if data.get("kind") == "train":
            return TrainSpec(executor=data.get("executor"), **common)
        if data.get("kind") == "preprocess":
            return PreprocessSpec(total=data.get("total"), func=data.get("func"), into=data.get("into"),
                                  sink=bool(data.get("sink")), pipeline=bool(data.get("pipeline")),
                                  options=dict(data.get("options") or {}), **common)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"its resume spec is damaged ({type(exc).__name__}: {exc})") from None
    raise ValueError(f"its resume spec is of an unknown kind {data.get('kind')!r}")
