"""Heat map: colour objects by one feature (the viewer reads the values themselves)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from tmlib.errors import InvalidInputError
from tmlib.lazy import lazy_import
from tmlib.tools.base import BATCH_SIZE, Tool, find_features, iter_features, require_str

np = lazy_import("numpy")
sa = lazy_import("sqlalchemy")
tm = lazy_import("tmlib.models")


class Heatmap(Tool):
    """Show a feature as a heat map: stores its range (``min``, ``max``) and no labels."""

    name: ClassVar[str] = "Heatmap"
    icon: ClassVar[str] = "HMP"
    description: ClassVar[str] = "Colour objects by the value of one feature."
    methods: ClassVar[tuple[str, ...]] = ()
    result_model = "HeatmapToolResult"

    def validate(self, payload: Any) -> dict[str, Any]:
        """Check ``chosen_object_type`` and ``selected_feature``."""
        if not isinstance(payload, dict):
            raise InvalidInputError("the Heatmap payload must be a JSON object")
        feature = require_str(payload, "selected_feature")
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            mapobject_type = self.check_type(session, payload)
            find_features(session, mapobject_type, [feature])
            feature_id = session.scalar(
                sa.select(tm.Feature.id).where(
                    tm.Feature.name == feature,
                    tm.Feature.mapobject_type_id == mapobject_type.id,
                )
            )
            type_id = mapobject_type.id
        return {"mapobject_type_id": type_id, "feature": feature, "feature_id": feature_id}

    def compute(self, request: dict[str, Any], result_id: int) -> dict[str, Any]:
        low, high = math.inf, -math.inf
        for chunk in iter_features(
            self.experiment_id, request["mapobject_type_id"], [request["feature"]], BATCH_SIZE
        ):
            values = chunk.iloc[:, 0].to_numpy()
            values = values[np.isfinite(values)]
            if values.size:
                low, high = min(low, float(values.min())), max(high, float(values.max()))
        if low > high:
            raise InvalidInputError(
                f"feature {request['feature']!r} has no finite value: nothing to show"
            )
        return {"feature_id": request["feature_id"], "min": low, "max": high}
