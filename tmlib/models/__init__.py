"""The data model: ``import tmlib.models as tm``.

Main database: :class:`User`, :class:`ExperimentReference`,
:class:`ExperimentShare`, :class:`Submission`, :class:`Task`.
Per experiment: :class:`Experiment` and everything below it.
Sessions: ``tm.utils.MainSession()`` and ``tm.utils.ExperimentSession(id)``.
"""

from tmlib.models import utils
from tmlib.models.base import ExperimentModel, Geometry, MainModel
from tmlib.models.channel import (
    Channel,
    ChannelImageFile,
    ChannelLayer,
    IllumstatsFile,
    IllumstatsImages,
)
from tmlib.models.experiment import (
    Acquisition,
    Cycle,
    Experiment,
    MicroscopeImageFile,
    MicroscopeMetadataFile,
    Plate,
    Site,
    SiteShift,
    Well,
)
from tmlib.models.main import ExperimentReference, ExperimentShare, Submission, Task, User
from tmlib.models.mapobject import (
    Feature,
    FeatureValues,
    Mapobject,
    MapobjectSegmentation,
    MapobjectType,
    SegmentationLayer,
)
from tmlib.models.result import (
    ContinuousToolResult,
    HeatmapToolResult,
    LabelValues,
    Plot,
    ScalarToolResult,
    SupervisedClassifierToolResult,
    ToolResult,
)
from tmlib.models.selection import Selection, SelectionMember

__all__ = [
    "Acquisition",
    "Channel",
    "ChannelImageFile",
    "ChannelLayer",
    "ContinuousToolResult",
    "Cycle",
    "Experiment",
    "ExperimentModel",
    "ExperimentReference",
    "ExperimentShare",
    "Feature",
    "FeatureValues",
    "Geometry",
    "HeatmapToolResult",
    "IllumstatsFile",
    "IllumstatsImages",
    "LabelValues",
    "MainModel",
    "Mapobject",
    "MapobjectSegmentation",
    "MapobjectType",
    "MicroscopeImageFile",
    "MicroscopeMetadataFile",
    "Plate",
    "Plot",
    "ScalarToolResult",
    "SegmentationLayer",
    "Selection",
    "SelectionMember",
    "Site",
    "SiteShift",
    "Submission",
    "SupervisedClassifierToolResult",
    "Task",
    "ToolResult",
    "User",
    "Well",
    "utils",
]
