"""jtmodules: the image-analysis modules of jterator pipelines.

Every module is two files in this package (or in a user's module directory):

``<name>.py``
    Pure Python over numpy arrays, with no side effects::

        VERSION = "0.1.0"
        Output = collections.namedtuple("Output", ["smoothed_image", "figure"])

        def main(image, filter_name="gaussian", filter_size=5, plot=False):
            ...
            return Output(smoothed_image, figure)

    ``main`` takes the module's input handles as keyword arguments and returns
    a namedtuple whose fields are its output handles. ``figure`` is a Plotly
    figure as a JSON string when ``plot`` is true and ``""`` otherwise (see
    :mod:`jtmodules._plots`).

``<name>.handles.yaml``
    The module's interface: ``version`` (equal to ``VERSION``), ``input`` and
    ``output`` lists of handles. A handle has a ``name`` (the argument or
    output field), a ``type`` (``IntensityImage``, ``MaskImage``,
    ``LabelImage``, ``BinaryImage``, ``SegmentedObjects``, ``Measurement``,
    ``Figure``, or the constants ``Numeric``, ``Character``, ``Boolean``,
    ``Scalar``, ``Sequence``, ``Set``, ``Plot``), a ``help`` text, and either a
    ``key`` (images and objects passed between modules; by convention
    ``<module>.<output name>``, a channel's or object type's name for pipeline
    inputs) or a ``value`` (constants; ``options`` lists allowed values).
    ``Measurement`` outputs also name, by handle name, the ``objects`` that get
    the features, the ``objects_ref`` that were measured, and optionally the
    ``channel_ref`` image they were measured in.

Array conventions: intensity images are uint8 or uint16 (M, N); label images
are int32 (M, N) with 0 as background; binary images are bool (M, N).
Measurements are :class:`pandas.DataFrame` objects indexed by the labels of
``objects``, one column per feature (``Intensity_mean``, ``Morphology_Area``,
...); jterator adds the object and channel names to the column names.
"""
