"""Schemathesis against the OpenAPI description: no request may get a 500.

The fuzzer runs on a processed plate of its own (it deletes and renames
things), as user ``alice``, who owns the experiment, so that the requests reach
the routes' code rather than stopping at the permission check. Submitting a
workflow or debug jobs is left out: those start background processes and have
tests of their own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from conftest import Processed, Server, build_processed, make_server, use_processed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow

# logging out everywhere would make every later case a 401
_NOT_FUZZED = ("/workflow/submit", "/workflow/resubmit", "/jobs/run", "/auth/logout_all")


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("fuzz")
    processed: Processed = build_processed(root)
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_processed(processed, monkeypatch, root)
        server = make_server(monkeypatch)
        server.experiment_id = processed.experiment_id
        yield server


#: path parameter -> model whose ids it takes
_ID_MODELS = {
    "plate_id": "Plate",
    "acquisition_id": "Acquisition",
    "cycle_id": "Cycle",
    "well_id": "Well",
    "site_id": "Site",
    "channel_id": "Channel",
    "channel_layer_id": "ChannelLayer",
    "segmentation_layer_id": "SegmentationLayer",
    "mapobject_type_id": "MapobjectType",
    "feature_id": "Feature",
    "mapobject_id": "Mapobject",
    "tool_result_id": "ToolResult",
    "selection_id": "Selection",
}


def _existing_ids(experiment_id: int) -> dict[str, list[int]]:
    """Some ids of each kind in the experiment, so that cases reach real objects."""
    import sqlalchemy as sa

    import tmlib.models as tm

    ids: dict[str, list[int]] = {"experiment_id": [experiment_id]}
    with tm.utils.ExperimentSession(experiment_id) as session:
        for name, model in _ID_MODELS.items():
            column = getattr(tm, model).id
            found = session.scalars(sa.select(column).order_by(column).limit(5)).all()
            ids[name] = list(found) or [1]
    with tm.utils.MainSession() as session:
        found = session.scalars(sa.select(tm.Task.id).order_by(tm.Task.id.desc()).limit(5)).all()
        ids["job_id"] = list(found) or [1]
    return ids


def _fuzz(operation, headers: dict[str, str], known: dict[str, list[int]]) -> str | None:
    """Run one operation's generated cases; the first 5xx found, described, or None.

    Most cases get existing ids in their path (the fuzzer alone would almost
    never guess one); the others keep the generated ones.
    """
    found: list[str] = []

    @given(case=operation.as_strategy(), data=st.data())
    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case, data) -> None:
        for name in case.path_parameters or {}:
            if name in known and data.draw(st.sampled_from([True, True, True, False])):
                case.path_parameters[name] = str(data.draw(st.sampled_from(known[name])))
        response = case.call(headers=headers)
        if response.status_code >= 500 and not found:
            found.append(
                f"{case.method} {case.formatted_path} query={case.query} body={case.body!r}: "
                f"{response.status_code} {response.text[:200]}"
            )

    run()
    return found[0] if found else None


def test_no_server_errors(fuzz_server: Server) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", fuzz_server.app)
    schema = schema.exclude(path_regex="|".join(_NOT_FUZZED))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 10
    # deleting the experiment would leave nothing to fuzz; other deletions go last
    operations = [
        op
        for op in operations
        if not (op.method.upper() == "DELETE" and op.path.endswith("/experiments/{experiment_id}"))
    ]
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    known = _existing_ids(fuzz_server.experiment_id)
    errors = [_fuzz(op, fuzz_server.headers("alice"), known) for op in operations]
    errors = [e for e in errors if e is not None]
    assert not errors, "\n".join(errors)
