"""Timeline plots of temporal action detections (one row per label, bars shaded by score)."""

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .file_utils import atomic_write


if TYPE_CHECKING:
    from matplotlib.figure import Figure


# Layout in inches at `_DPI`; the figure grows with the number of rows so that labels never overlap.
_DPI = 100
_FIGURE_WIDTH = 10.0
_ROW_HEIGHT = 0.4
_MARGIN_HEIGHT = 1.4
_BAR_HEIGHT = 0.7
_GROUND_TRUTH_PREFIX = "GT: "
_GROUND_TRUTH_COLOR = "#d62728"
# File extension -> matplotlib format of the pictures `plot_timeline` writes.
PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def plot_format(output_path: str | os.PathLike) -> str:
    r"""
    The picture format that the extension of `output_path` names, checked before anything is drawn or written.

    Args:
        output_path (`str` or `os.PathLike`):
            The picture to write, e.g. `"timeline.svg"`; the extension is case-insensitive.

    Returns:
        `str`: `"png"`, `"svg"` or `"pdf"`.

    Raises:
        `ValueError`: naming the path, if its extension is none of `.png`, `.svg` and `.pdf` (or it has none).
    """
    output_path = os.fspath(output_path)
    extension = os.path.splitext(output_path)[1]
    if extension.lower() not in PLOT_FORMATS:
        found = f"the extension {extension!r}" if extension else "no extension"
        raise ValueError(
            f"{output_path!r} has {found}: timeline pictures are written as PNG, SVG or PDF, chosen by the file "
            f"extension ({', '.join(PLOT_FORMATS)})."
        )
    return PLOT_FORMATS[extension.lower()]


def _segment_bounds(segment: Any, where: str) -> tuple[float, float]:
    """Read `(start, end)` seconds from `{"start": s, "end": e}` or `[s, e]`, rejecting anything a plot would hide."""
    if isinstance(segment, Mapping):
        if "start" not in segment or "end" not in segment:
            raise ValueError(f"{where}: `segment` needs the keys 'start' and 'end', got {sorted(segment)}.")
        bounds = (segment["start"], segment["end"])
    elif isinstance(segment, Sequence) and not isinstance(segment, str) and len(segment) == 2:
        bounds = tuple(segment)
    else:
        raise ValueError(f"{where}: `segment` must be {{'start': s, 'end': e}} or [start, end], got {segment!r}.")
    try:
        start, end = float(bounds[0]), float(bounds[1])
    except (TypeError, ValueError):
        raise ValueError(f"{where}: segment times must be numbers, got {bounds!r}.") from None
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ValueError(f"{where}: segment times must be finite, got start={start} and end={end}.")
    if start < 0:
        raise ValueError(f"{where}: segment start must be >= 0 seconds, got {start}.")
    if end < start:
        raise ValueError(f"{where}: segment end ({end}) is before its start ({start}).")
    return start, end


def _label_of(item: Mapping, where: str) -> str:
    label = item.get("label")
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"{where}: `label` must be a non-empty string, got {label!r}.")
    return label


def _parse_detections(detections: Sequence[Mapping]) -> list[tuple[str, float, float, float]]:
    if isinstance(detections, (str, Mapping)) or not isinstance(detections, Sequence):
        raise ValueError(f"`detections` must be a list of dicts for one video, got {type(detections).__name__}.")
    parsed = []
    for index, detection in enumerate(detections):
        where = f"detections[{index}]"
        if not isinstance(detection, Mapping):
            # The most likely mistake: the pipeline's output for several videos (a list of lists).
            raise ValueError(
                f"{where} must be a dict with 'score', 'label' and 'segment' (the detections of one video), "
                f"got {type(detection).__name__}."
            )
        try:
            score = float(detection.get("score"))
        except (TypeError, ValueError):
            raise ValueError(f"{where}: `score` must be a number, got {detection.get('score')!r}.") from None
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"{where}: `score` must be in [0, 1], got {score}.")
        start, end = _segment_bounds(detection.get("segment"), where)
        parsed.append((_label_of(detection, where), score, start, end))
    return parsed


def validate_ground_truth(ground_truth: Sequence[Mapping]) -> list[tuple[str, float, float]]:
    r"""
    Check ground-truth annotations of one video and return them as `(label, start, end)` tuples in seconds.

    Args:
        ground_truth (`list[dict]`):
            Annotations `{"label": str, "segment": {"start": s, "end": e} or [s, e]}`.

    Returns:
        `list[tuple[str, float, float]]`

    Raises:
        `ValueError`: if an annotation is not such a dict, its label is not a non-empty string, or its segment has
        negative or non-finite times or ends before it starts (the message names the annotation's index).
    """
    if isinstance(ground_truth, (str, Mapping)) or not isinstance(ground_truth, Sequence):
        raise ValueError(
            f"`ground_truth` must be a list of {{'label', 'segment'}} dicts, got {type(ground_truth).__name__}."
        )
    parsed = []
    for index, annotation in enumerate(ground_truth):
        where = f"ground_truth[{index}]"
        if not isinstance(annotation, Mapping):
            raise ValueError(f"{where} must be a dict with 'label' and 'segment', got {type(annotation).__name__}.")
        start, end = _segment_bounds(annotation.get("segment"), where)
        parsed.append((_label_of(annotation, where), start, end))
    return parsed


def timeline_figure(
    detections: Sequence[Mapping],
    *,
    duration: float | None = None,
    ground_truth: Sequence[Mapping] | None = None,
    title: str | None = None,
) -> "Figure":
    r"""
    Draw the detections of one video as a timeline and return the (unsaved) matplotlib figure.

    Rows are labels, ordered by their best detection (highest on top), then labels that only occur in the ground truth.
    With `ground_truth`, every label gets a second row `"GT: <label>"` right below its detections, so misses and false
    alarms are visible side by side. The figure is built without `matplotlib.pyplot`, so it neither needs a display
    nor touches global plotting state.

    Args:
        detections (`list[dict]`):
            Detections of one video as returned by the `"zero-shot-temporal-action-detection"` pipeline:
            `{"score": float in [0, 1], "label": str, "segment": {"start": seconds, "end": seconds}}`; a segment may
            also be a `[start, end]` pair.
        duration (`float`, *optional*):
            Length of the video in seconds; the x axis spans `[0, duration]` and longer segments are cut at the edge.
            Defaults to the latest segment end.
        ground_truth (`list[dict]`, *optional*):
            Annotated actions `{"label": str, "segment": {"start": s, "end": e} or [s, e]}`, drawn on their own rows.
        title (`str`, *optional*):
            Title above the plot.

    Returns:
        `matplotlib.figure.Figure`: the figure, with an Agg canvas attached.

    Raises:
        `ValueError`: if a segment ends before it starts, has negative or non-finite times, a score is outside
        `[0, 1]`, a label is not a non-empty string, or `duration` is not a finite positive number.
    """
    # Imported here so that `import zeetad_hf` stays fast and works without a plotting stack in use.
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    parsed_detections = _parse_detections(detections)
    parsed_ground_truth = validate_ground_truth(ground_truth) if ground_truth is not None else None
    if duration is not None:
        try:
            duration = float(duration)
        except (TypeError, ValueError):
            raise ValueError(f"`duration` must be a number of seconds, got {duration!r}.") from None
        if not (math.isfinite(duration) and duration > 0):
            raise ValueError(f"`duration` must be a finite number of seconds > 0, got {duration}.")

    # Row order: best-scoring label first (dicts keep insertion order), ground-truth-only labels last.
    labels = {}
    for label, _, _, _ in sorted(parsed_detections, key=lambda item: -item[1]):
        labels.setdefault(label, None)
    for label, _, _ in parsed_ground_truth or []:
        labels.setdefault(label, None)
    rows_per_label = 2 if parsed_ground_truth is not None else 1
    num_rows = max(len(labels) * rows_per_label, 1)

    figure = Figure(figsize=(_FIGURE_WIDTH, _MARGIN_HEIGHT + _ROW_HEIGHT * num_rows), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colormap = colormaps["viridis"]
    norm = Normalize(vmin=0.0, vmax=1.0)

    row_of_label = {label: index * rows_per_label for index, label in enumerate(labels)}
    if parsed_ground_truth is not None:
        # Shade every other label's pair of rows so each detection row reads together with its ground truth row.
        for index in range(1, len(labels), 2):
            axes.axhspan(index * rows_per_label - 0.5, (index + 1) * rows_per_label - 0.5, color="0.94", zorder=0)
    # Weakest first so that, where detections of one label overlap, the strongest is drawn on top.
    for label, score, start, end in sorted(parsed_detections, key=lambda item: item[1]):
        axes.barh(
            row_of_label[label],
            end - start,
            left=start,
            height=_BAR_HEIGHT,
            color=colormap(norm(score)),
            edgecolor="black",
            linewidth=0.5,
        )
    for label, start, end in parsed_ground_truth or []:
        axes.barh(
            row_of_label[label] + 1,
            end - start,
            left=start,
            height=_BAR_HEIGHT,
            color=_GROUND_TRUTH_COLOR,
            edgecolor="black",
            linewidth=0.5,
            hatch="//",
        )

    tick_labels = []
    for label in labels:
        tick_labels.append(label)
        if parsed_ground_truth is not None:
            tick_labels.append(_GROUND_TRUTH_PREFIX + label)
    axes.set_yticks(range(len(tick_labels)), tick_labels)
    # Row 0 at the top reads like a ranked list.
    axes.set_ylim(num_rows - 0.5, -0.5)

    ends = [end for _, _, _, end in parsed_detections] + [end for _, _, end in parsed_ground_truth or []]
    x_max = duration if duration is not None else max(ends, default=0.0)
    axes.set_xlim(0.0, x_max if x_max > 0 else 1.0)
    axes.set_xlabel("time (s)")
    axes.grid(axis="x", linestyle=":", linewidth=0.5)
    if not labels:
        axes.text(0.5, 0.5, "no detections", transform=axes.transAxes, ha="center", va="center", color="gray")
    if title is not None:
        axes.set_title(title)
    figure.colorbar(ScalarMappable(norm=norm, cmap=colormap), ax=axes, label="score", pad=0.01)
    return figure


def plot_timeline(
    detections: Sequence[Mapping],
    output_path: str | os.PathLike,
    *,
    duration: float | None = None,
    ground_truth: Sequence[Mapping] | None = None,
    title: str | None = None,
) -> str:
    r"""
    Save a timeline of one video's detections as a PNG, SVG or PDF picture, as the extension of `output_path` names
    (see [`timeline_figure`] for the layout).

    The picture is written to a temporary file next to `output_path` and moved into place with `os.replace`, so
    readers never see a half-written file and a failure leaves any previous file untouched. Missing parent folders are
    created.

    Args:
        detections (`list[dict]`):
            Detections of one video, `{"score", "label", "segment": {"start", "end"}}` in seconds.
        output_path (`str` or `os.PathLike`):
            Where to write the picture: a path ending in `.png`, `.svg` or `.pdf` (case-insensitive), which selects
            the format.
        duration (`float`, *optional*):
            Length of the video in seconds (the x axis spans `[0, duration]`).
        ground_truth (`list[dict]`, *optional*):
            Annotated actions `{"label", "segment"}`, drawn on their own `"GT: <label>"` rows.
        title (`str`, *optional*):
            Title above the plot.

    Returns:
        `str`: `output_path`.

    Raises:
        `ValueError`: if `output_path` is empty, a directory or has another extension (see [`plot_format`]), or the
        inputs are invalid (see [`timeline_figure`]).
    """
    output_path = os.fspath(output_path)
    if not output_path:
        raise ValueError("`output_path` must be a non-empty file path.")
    if os.path.isdir(output_path):
        raise ValueError(f"`output_path` {output_path!r} is a directory; give a file path such as 'timeline.png'.")
    image_format = plot_format(output_path)
    # Validate and draw before touching the file system, so bad input creates nothing.
    figure = timeline_figure(detections, duration=duration, ground_truth=ground_truth, title=title)

    with atomic_write(output_path, "wb") as file:
        figure.savefig(file, format=image_format)
    return output_path


__all__ = ["PLOT_FORMATS", "plot_format", "plot_timeline", "timeline_figure", "validate_ground_truth"]
