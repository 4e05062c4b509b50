"""Session helpers (``tm.utils.MainSession``, ``tm.utils.ExperimentSession``)."""

from tmlib.models.session import (
    ExperimentSession,
    MainSession,
    dispose_engines,
    experiment_engine,
    experiment_location,
    main_engine,
    use_job_connections,
)

__all__ = [
    "ExperimentSession",
    "MainSession",
    "dispose_engines",
    "experiment_engine",
    "experiment_location",
    "main_engine",
    "use_job_connections",
]
