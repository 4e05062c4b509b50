"""Unsupervised clustering of objects by their features (k-means)."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from tmlib.errors import InvalidInputError
from tmlib.lazy import lazy_import
from tmlib.tools.base import (
    BATCH_SIZE,
    Tool,
    count_feature_rows,
    find_features,
    finite_rows,
    iter_features,
    require_int,
    save_labels,
)

np = lazy_import("numpy")
pd = lazy_import("pandas")
tm = lazy_import("tmlib.models")

logger = logging.getLogger(__name__)

#: at most this many objects are used to fit the model
SAMPLE_SIZE = 100_000
#: the most clusters one may ask for
MAX_CLUSTERS = 1000


class Clustering(Tool):
    """Group objects into `k` clusters; every object gets its cluster number 0..k-1."""

    name: ClassVar[str] = "Clustering"
    icon: ClassVar[str] = "CLU"
    description: ClassVar[str] = "Group objects into k clusters of similar feature values."
    methods: ClassVar[tuple[str, ...]] = ("kmeans",)
    result_model = "ScalarToolResult"

    def __init__(self, experiment_id: int, seed: int = 0) -> None:
        super().__init__(experiment_id)
        self.seed = seed

    def validate(self, payload: Any) -> dict[str, Any]:
        """Check ``chosen_object_type``, ``selected_features`` and ``options`` {method, k}."""
        if not isinstance(payload, dict):
            raise InvalidInputError("the Clustering payload must be a JSON object")
        options = self.options(payload)
        k = require_int(options.get("k"), "k", minimum=2, maximum=MAX_CLUSTERS)
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            mapobject_type = self.check_type(session, payload)
            features = find_features(session, mapobject_type, payload.get("selected_features"))
            type_id, type_name = mapobject_type.id, mapobject_type.name
        n_rows = count_feature_rows(self.experiment_id, type_id)
        if n_rows < k:
            raise InvalidInputError(
                f"cannot make {k} clusters of {n_rows} objects of type {type_name!r} "
                "(k must not exceed the number of objects with feature values)"
            )
        return {
            "mapobject_type_id": type_id,
            "features": features,
            "method": options["method"],
            "k": k,
        }

    def sample(self, request: dict[str, Any], size: int = SAMPLE_SIZE) -> pd.DataFrame:
        """Up to `size` objects drawn at random (chunk by chunk: memory bounded by the sample)."""
        n_rows = count_feature_rows(self.experiment_id, request["mapobject_type_id"])
        rng = np.random.default_rng(self.seed)
        chosen = np.sort(rng.choice(n_rows, size=min(size, n_rows), replace=False))
        parts, offset = [], 0
        for chunk in iter_features(
            self.experiment_id, request["mapobject_type_id"], request["features"], BATCH_SIZE
        ):
            # positions of the chosen rows that fall into this chunk
            lo, hi = np.searchsorted(chosen, [offset, offset + len(chunk)])
            parts.append(chunk.iloc[chosen[lo:hi] - offset])
            offset += len(chunk)
        return finite_rows(pd.concat(parts)) if parts else pd.DataFrame()

    def compute(self, request: dict[str, Any], result_id: int) -> dict[str, Any]:
        k = request["k"]
        sample = self.sample(request)
        if len(sample) < k:
            raise InvalidInputError(
                f"only {len(sample)} objects have finite values of all selected features; "
                f"cannot make {k} clusters"
            )
        from sklearn.cluster import KMeans  # slow to import: only when needed
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import RobustScaler

        model = Pipeline(
            [
                ("scale", RobustScaler()),
                ("model", KMeans(n_clusters=k, n_init=10, random_state=self.seed)),
            ]
        )
        model.fit(sample.to_numpy())
        logger.info("k-means with k=%d fitted on %d objects", k, len(sample))
        for chunk in iter_features(
            self.experiment_id, request["mapobject_type_id"], request["features"], BATCH_SIZE
        ):
            chunk = finite_rows(chunk)
            if chunk.empty:
                continue
            save_labels(
                self.experiment_id,
                result_id,
                pd.Series(model.predict(chunk.to_numpy()), index=chunk.index),
            )
        return {
            "unique_labels": list(range(k)),
            "method": request["method"],
            "k": k,
            "features": request["features"],
            "n_fitted": len(sample),
        }
