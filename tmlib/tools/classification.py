"""Supervised classification: train on objects the user assigned to classes, label all objects."""

from __future__ import annotations

import logging
import warnings
from typing import Any, ClassVar

from tmlib.errors import InvalidInputError
from tmlib.lazy import lazy_import
from tmlib.tools.base import (
    BATCH_SIZE,
    Tool,
    check_objects,
    find_features,
    finite_rows,
    iter_features,
    load_features,
    parse_object_ids,
    require_int,
    save_labels,
)

np = lazy_import("numpy")
pd = lazy_import("pandas")
tm = lazy_import("tmlib.models")

logger = logging.getLogger(__name__)

#: training sets smaller than this are searched in one process (worker start-up costs more)
_PARALLEL_FROM = 2_000
#: the most folds of a cross-validation
MAX_FOLDS = 100


def make_search(method: str, n_fold_cv: int, n_jobs: int = 1) -> Any:
    """The grid search of a method, with `n_fold_cv`-fold cross-validation.

    ``randomforest``: no scaling; ``svm`` and ``logisticregression``: robust
    scaling (1-99 % quantile range) before the model. Returns a
    :class:`sklearn.model_selection.GridSearchCV`.
    """
    # scikit-learn is imported here: it takes a second, and requests that fail
    # validation (or other tools) never need it
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import RobustScaler
    from sklearn.svm import SVC

    if method == "randomforest":
        model: Any = RandomForestClassifier(random_state=0)
        grid: Any = {
            "n_estimators": [3, 6, 12, 24],
            "max_depth": [3, 6, 12, None],
            "min_samples_split": [2, 4, 8],
            "class_weight": ["balanced", None],
        }
    elif method == "svm":
        model = Pipeline(
            [("scale", RobustScaler(quantile_range=(1.0, 99.0))), ("model", SVC(random_state=0))]
        )
        costs = [2.0**e for e in range(-5, 16, 2)]
        grid = [
            {"model__kernel": ["linear"], "model__C": costs},
            {
                "model__kernel": ["rbf"],
                "model__C": costs,
                "model__gamma": [2.0**e for e in range(-15, -2, 2)],
            },
        ]
    elif method == "logisticregression":
        model = Pipeline(
            [
                ("scale", RobustScaler(quantile_range=(1.0, 99.0))),
                (
                    "model",
                    SGDClassifier(
                        loss="log_loss", penalty="elasticnet", max_iter=1000, random_state=0
                    ),
                ),
            ]
        )
        grid = {
            "model__alpha": [10.0**e for e in range(-6, 0)],
            "model__l1_ratio": [0.0, 0.15, 0.5, 0.85, 1.0],
        }
    else:
        raise InvalidInputError(f"unknown classification method {method!r}")
    # stratified: a fold without some class cannot train a classifier (SVMs refuse it)
    cv = StratifiedKFold(n_splits=n_fold_cv, shuffle=True, random_state=0)
    return GridSearchCV(model, grid, cv=cv, n_jobs=n_jobs)


class Classification(Tool):
    """Train a classifier on labelled objects and predict the class of every object."""

    name: ClassVar[str] = "Classification"
    icon: ClassVar[str] = "SVC"
    description: ClassVar[str] = (
        "Assign objects to classes with a supervised classifier trained on objects you selected "
        "on the map."
    )
    methods: ClassVar[tuple[str, ...]] = ("randomforest", "svm", "logisticregression")
    result_model = "SupervisedClassifierToolResult"

    def validate(self, payload: Any) -> dict[str, Any]:
        """Check ``chosen_object_type``, ``selected_features``, ``training_classes`` and
        ``options`` {``method``, ``n_fold_cv`` (default 10)}."""
        if not isinstance(payload, dict):
            raise InvalidInputError("the Classification payload must be a JSON object")
        options = self.options(payload)
        n_fold_cv = require_int(
            options.get("n_fold_cv"), "n_fold_cv", default=10, minimum=2, maximum=MAX_FOLDS
        )
        classes = payload.get("training_classes")
        if not isinstance(classes, list) or len(classes) < 2:
            raise InvalidInputError(
                "'training_classes' must list at least 2 classes, each {name, object_ids, color}"
            )
        names: list[str] = []
        colors: list[str | None] = []
        members: list[list[int]] = []
        owner: dict[int, str] = {}
        for i, cls in enumerate(classes):
            if not isinstance(cls, dict):
                raise InvalidInputError(f"training class {i} must be a JSON object")
            name = cls.get("name")
            if not isinstance(name, str) or not name.strip():
                raise InvalidInputError(f"training class {i} needs a 'name'")
            if name in names:
                raise InvalidInputError(f"training class {name!r} is given twice")
            color = cls.get("color")
            if color is not None and not isinstance(color, str):
                raise InvalidInputError(f"training class {name!r}: 'color' must be a string")
            ids = parse_object_ids(cls.get("object_ids"), f"training class {name!r}")
            for object_id in ids:
                if owner.setdefault(object_id, name) != name:
                    raise InvalidInputError(
                        f"object {object_id} is in training classes {owner[object_id]!r} "
                        f"and {name!r}"
                    )
            names.append(name)
            colors.append(color)
            members.append(sorted(set(ids)))
        n_objects = len(owner)
        if n_fold_cv > n_objects:
            raise InvalidInputError(
                f"n_fold_cv ({n_fold_cv}) exceeds the number of training objects ({n_objects})"
            )
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            mapobject_type = self.check_type(session, payload)
            features = find_features(session, mapobject_type, payload.get("selected_features"))
            check_objects(session, mapobject_type, owner)
            type_id = mapobject_type.id
        return {
            "mapobject_type_id": type_id,
            "features": features,
            "classes": [
                {"name": n, "color": c, "object_ids": m}
                for n, c, m in zip(names, colors, members, strict=True)
            ],
            "method": options["method"],
            "n_fold_cv": n_fold_cv,
        }

    def training_set(self, request: dict[str, Any]) -> tuple[pd.DataFrame, np.ndarray]:
        """Feature values and class labels (0, 1, ... in the order of the classes).

        Raises
        ------
        InvalidInputError
            When a class has no object with finite values of all features.
        """
        frames, labels = [], []
        for label, cls in enumerate(request["classes"]):
            frame = finite_rows(
                load_features(
                    self.experiment_id,
                    request["mapobject_type_id"],
                    request["features"],
                    cls["object_ids"],
                )
            )
            if frame.empty:
                raise InvalidInputError(
                    f"training class {cls['name']!r} is empty: none of its objects has "
                    "finite values of all selected features"
                )
            frames.append(frame)
            labels.append(np.full(len(frame), label))
        return pd.concat(frames), np.concatenate(labels)

    def compute(self, request: dict[str, Any], result_id: int) -> dict[str, Any]:
        features, labels = self.training_set(request)
        n_fold_cv = request["n_fold_cv"]
        counts = np.bincount(labels, minlength=len(request["classes"]))
        smallest = int(np.argmin(counts))
        if n_fold_cv > counts[smallest]:
            # the folds are stratified (each keeps every class): each class needs a member per fold
            raise InvalidInputError(
                f"n_fold_cv ({n_fold_cv}) exceeds the number of usable objects of training class "
                f"{request['classes'][smallest]['name']!r} ({counts[smallest]})"
            )
        from tmlib.config import load_settings

        # no more processes than the cores the tool job asked for (TMAPS_TOOL_CORES)
        n_jobs = load_settings().tool_cores if len(labels) >= _PARALLEL_FROM else 1
        search = make_search(request["method"], n_fold_cv, n_jobs)
        from sklearn.exceptions import ConvergenceWarning, FitFailedWarning

        with warnings.catch_warnings():
            # folds that lack a class fail to fit; the search scores them as NaN
            warnings.simplefilter("ignore", category=FitFailedWarning)
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            warnings.simplefilter("ignore", category=UserWarning)
            search.fit(features.to_numpy(), labels)
        logger.info(
            "%s: best parameters %s, cross-validated accuracy %.3f",
            request["method"],
            search.best_params_,
            search.best_score_,
        )
        model = search.best_estimator_
        for chunk in iter_features(
            self.experiment_id, request["mapobject_type_id"], request["features"], BATCH_SIZE
        ):
            chunk = finite_rows(chunk)
            if chunk.empty:
                continue
            predicted = model.predict(chunk.to_numpy())
            save_labels(self.experiment_id, result_id, pd.Series(predicted, index=chunk.index))
        classes = request["classes"]
        return {
            "unique_labels": list(range(len(classes))),
            "label_map": {
                str(i): {"name": c["name"], "color": c["color"]} for i, c in enumerate(classes)
            },
            "method": request["method"],
            "features": request["features"],
            "best_params": {k: _plain(v) for k, v in search.best_params_.items()},
            "cv_accuracy": float(search.best_score_),
        }


def _plain(value: Any) -> Any:
    """A JSON-able copy of a grid parameter value."""
    if isinstance(value, np.generic):
        return value.item()
    return value
