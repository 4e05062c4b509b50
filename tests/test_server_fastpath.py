"""The tile routes' fast path (tmserver.fastpath) answers exactly as the Flask path.

Every request below is sent twice: once as the server takes it (tile GETs are
answered by :class:`tmserver.fastpath.FastRoutes` before Flask) and once with
the fast routes switched off, so Flask's routing, checks and error handlers
answer. Status, body and the headers a client or cache reads must agree.
"""

from __future__ import annotations

import sqlalchemy as sa

import tmlib.models as tm
from tmserver.fastpath import FastRoutes, path_pattern, query_arguments

_COMPARED_HEADERS = ("Content-Type", "Cache-Control", "ETag", "Retry-After")


def _fast_routes(app) -> FastRoutes:
    layer = app.wsgi_app
    while not isinstance(layer, FastRoutes):
        layer = layer.app  # TokenOutOfUrl, ProxyFix
    return layer


def _flask_calls(app, monkeypatch) -> list[str]:
    """Names of the views Flask runs from now on (the fast path runs none)."""
    calls: list[str] = []
    for name, view in list(app.view_functions.items()):

        def counted(*args, _name=name, _view=view, **kwargs):
            calls.append(_name)
            return _view(*args, **kwargs)

        monkeypatch.setitem(app.view_functions, name, counted)
    return calls


def _answer(server, method: str, path: str, user: str | None, headers: dict) -> tuple:
    response = server.client.open(path, method=method, headers={**server.headers(user), **headers})
    return (
        response.status_code,
        response.get_data(),
        {name: response.headers.get(name) for name in _COMPARED_HEADERS},
    )


def _layers(eid: int) -> tuple[int, int]:
    with tm.utils.ExperimentSession(eid) as session:
        channel_layer = session.scalar(sa.select(tm.ChannelLayer.id).order_by(tm.ChannelLayer.id))
        segmentation_layer = session.scalar(
            sa.select(tm.SegmentationLayer.id).order_by(tm.SegmentationLayer.id)
        )
    return channel_layer, segmentation_layer


def test_fast_tile_answers_equal_the_flask_answers(processed_server, processed, monkeypatch):
    eid = processed.experiment_id
    channel_layer, segmentation_layer = _layers(eid)
    raster = f"/api/experiments/{eid}/channel_layers/{channel_layer}/tiles"
    vector = f"/api/experiments/{eid}/segmentation_layers/{segmentation_layer}/tiles"
    tile_token = processed_server.post("/auth/tile_token").get_json()["access_token"]
    full_token = processed_server.tokens["alice"]
    ok = "?x=0&y=0&z=0"
    requests = []
    for url in (raster, vector):
        requests += [
            (url + ok, "alice", {}),  # the tile
            (url + "?x=1&y=0&z=0", "alice", {}),  # outside the level: 400 or empty
            (url + ok, None, {}),  # no token: 401
            (url + ok, "bob", {}),  # another user: 403
            (url + ok, None, {"Authorization": "JWT not.a.token"}),  # 401
            (url + ok, None, {"Authorization": "Bearer"}),  # malformed header: 401
            (url + "?x=0&z=0", "alice", {}),  # a required argument missing: 400
            (url + "?x=-1&y=0&z=0", "alice", {}),  # below its minimum: 400
            (url + "?x=a&y=0&z=0", "alice", {}),  # not an integer: 400
            (url + "?x=0&y=0&z=99", "alice", {}),  # no such zoom level: 400
            (url + "?x=0&y=0&z=0&x=5", "alice", {}),  # repeated: the first counts
            (url + "?x=0&y=0&z=0&extra=1", "alice", {}),  # undeclared: ignored or 400, alike
            (url + ok + f"&access_token={tile_token}", None, {}),  # tile token in the URL
            (url + ok + f"&access_token={full_token}", None, {}),  # a full token there: 401
            (url.replace(f"/{eid}/", "/999999/") + ok, "alice", {}),  # no such experiment
            (url.replace(f"/{eid}/", "/x!y/") + ok, "alice", {}),  # not an id
            (url.rsplit("/", 2)[0] + "/999/tiles" + ok, "alice", {}),  # no such layer: 404
        ]
    fast_routes = _fast_routes(processed_server.app)
    flask_calls = _flask_calls(processed_server.app, monkeypatch)
    fast_answers = [_answer(processed_server, "GET", *r) for r in requests]
    assert flask_calls == []  # all of them answered by the fast path
    monkeypatch.setattr(fast_routes, "routes", [])
    flask_answers = [_answer(processed_server, "GET", *r) for r in requests]
    assert len(flask_calls) > 0
    statuses = set()
    for request, fast, flask in zip(requests, fast_answers, flask_answers, strict=True):
        assert fast == flask, request
        statuses.add(fast[0])
    assert {200, 400, 401, 403, 404} <= statuses
    assert fast_answers[0][2]["ETag"]  # a raster tile has an ETag ...
    assert fast_answers[0][1].startswith(b"\xff\xd8")  # ... and is a JPEG


def test_fast_path_revalidates_with_the_etag(processed_server, processed):
    eid = processed.experiment_id
    url = f"/api/experiments/{eid}/channel_layers/{_layers(eid)[0]}/tiles?x=0&y=0&z=0"

    def get(user: str = "alice", if_none_match: str | None = None):
        headers = processed_server.headers(user)
        if if_none_match is not None:
            headers["If-None-Match"] = if_none_match
        return processed_server.client.get(url, headers=headers)

    first = get()
    etag = first.headers["ETag"]
    again = get(if_none_match=etag)
    assert again.status_code == 304 and again.get_data() == b""
    assert again.headers["ETag"] == etag
    other = get(if_none_match='"something-else"')
    assert other.status_code == 200 and other.get_data() == first.get_data()
    # another user cannot learn whether an ETag is current
    assert get("bob", if_none_match=etag).status_code == 403


def test_head_and_other_methods_go_to_flask(processed_server, processed, monkeypatch):
    eid = processed.experiment_id
    url = f"/api/experiments/{eid}/channel_layers/{_layers(eid)[0]}/tiles?x=0&y=0&z=0"
    calls = _flask_calls(processed_server.app, monkeypatch)
    head = processed_server.client.head(url, headers=processed_server.headers())
    assert head.status_code == 200 and head.get_data() == b""
    assert calls  # Flask answered it
    assert processed_server.post(url).status_code == 405


def test_path_pattern_matches_one_segment_per_parameter():
    pattern = path_pattern("/api/experiments/{experiment_id}/channel_layers/{layer_id}/tiles")
    match = pattern.fullmatch("/api/experiments/ab/channel_layers/3/tiles")
    assert match is not None and match.groupdict() == {"experiment_id": "ab", "layer_id": "3"}
    assert pattern.fullmatch("/api/experiments/a/b/channel_layers/3/tiles") is None
    assert pattern.fullmatch("/api/experiments/1/channel_layers/3/tiles/") is None
    assert path_pattern("/a.b/{x}").fullmatch("/aXb/1") is None  # literals are escaped


def test_query_arguments_keep_the_first_value_and_blanks():
    assert query_arguments("x=1&y=&x=2&z=%20") == {"x": "1", "y": "", "z": " "}
    assert query_arguments("") == {}
