"""Timeline plots of temporal action detections (one row per label, bars shaded by score)."""

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from transformers.utils import logging

from .file_utils import atomic_write


if TYPE_CHECKING:
    from matplotlib.colors import Colormap, Normalize
    from matplotlib.figure import Figure
    from matplotlib.legend import Legend
    from matplotlib.patches import Patch

logger = logging.get_logger(__name__)


# Layout in inches at `_DPI`; the figure grows with the number of rows so that labels never overlap.
_DPI = 100
_FIGURE_WIDTH = 10.0
_ROW_HEIGHT = 0.4
_MARGIN_HEIGHT = 1.4
_BAR_HEIGHT = 0.7
_GROUND_TRUTH_PREFIX = "GT: "
_GROUND_TRUTH_COLOR = "#d62728"
_SHADING_COLOR = "0.94"
# The legend below the plot has at most `_LEGEND_COLUMNS` entries a line; the scores whose colours stand for "coloured
# by score" in it.
_LEGEND_COLUMNS = 2
_LEGEND_LINE_HEIGHT = 0.3
_SCORE_SWATCH = (0.1, 0.5, 0.9)
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


def _stack_rows(segments: Sequence[tuple[float, float]]) -> list[int]:
    r"""
    Give each segment of one row a sub-row so that no box covers or touches another.

    The segments are placed in the given order, each in the first sub-row where it shares no point with a segment
    already there. Intervals count as closed, so boxes that only touch are separated too (two boxes of the same colour
    side by side would read as one long box).

    Args:
        segments (`list[tuple[float, float]]`):
            `(start, end)` seconds, in order of priority: the first segment gets sub-row 0.

    Returns:
        `list[int]`: the sub-row of each segment (0 is the top one).
    """
    placed: list[list[tuple[float, float]]] = []
    sub_rows = []
    for start, end in segments:
        sub_row = next(
            (
                index
                for index, row in enumerate(placed)
                if all(end < other_start or other_end < start for other_start, other_end in row)
            ),
            len(placed),
        )
        if sub_row == len(placed):
            placed.append([])
        placed[sub_row].append((start, end))
        sub_rows.append(sub_row)
    return sub_rows


@dataclass
class _RowLayout:
    """Where `timeline_figure` draws each box: y rows of detections and ground truth, and the rows of each label."""

    detection_rows: list[int]
    ground_truth_rows: list[int]
    tick_labels: dict[int, str] = field(default_factory=dict)  # first row of a row group -> its name
    label_spans: list[tuple[int, int]] = field(default_factory=list)  # rows [first, end) of each label
    num_rows: int = 0
    stacked: bool = False  # whether some label needed more than one sub-row


def _row_layout(
    detections: Sequence[tuple[str, float, float, float]], ground_truth: Sequence[tuple[str, float, float]]
) -> _RowLayout:
    """Lay out the rows of [`timeline_figure`]: labels by their best score, then ground-truth-only labels."""
    by_score = sorted(range(len(detections)), key=lambda index: -detections[index][1])  # stable: ties keep input order
    by_start = sorted(range(len(ground_truth)), key=lambda index: ground_truth[index][1:])
    labels = dict.fromkeys([detections[index][0] for index in by_score] + [item[0] for item in ground_truth])
    layout = _RowLayout(detection_rows=[0] * len(detections), ground_truth_rows=[0] * len(ground_truth))
    groups = (
        (detections, by_score, layout.detection_rows, ""),
        (ground_truth, by_start, layout.ground_truth_rows, _GROUND_TRUTH_PREFIX),
    )
    for label in labels:
        first_row = layout.num_rows
        for items, order, rows, prefix in groups:
            indices = [index for index in order if items[index][0] == label]
            if not indices:
                continue  # a label gets no row of a kind it has nothing of
            sub_rows = _stack_rows([items[index][-2:] for index in indices])
            for index, sub_row in zip(indices, sub_rows):
                rows[index] = layout.num_rows + sub_row
            layout.tick_labels[layout.num_rows] = prefix + label
            layout.num_rows += max(sub_rows) + 1
            layout.stacked = layout.stacked or max(sub_rows) > 0
        layout.label_spans.append((first_row, layout.num_rows))
    return layout


def _timeline_end(duration: Any, ends: list[float]) -> float:
    """End of the x axis in seconds: `duration` once checked, else the latest segment end (1 s for an empty plot)."""
    if duration is not None:
        try:
            duration = float(duration)
        except (TypeError, ValueError):
            raise ValueError(f"`duration` must be a number of seconds, got {duration!r}.") from None
        if not (math.isfinite(duration) and duration > 0):
            raise ValueError(f"`duration` must be a finite number of seconds > 0, got {duration}.")
        return duration
    latest_end = max(ends, default=0.0)
    return latest_end if latest_end > 0 else 1.0


def _in_shown_range(items: list[tuple], x_limit: float, what: str) -> list[tuple]:
    """Keep the segments (tuples ending in start, end) that start inside `[0, x_limit]`; warn about the others."""
    shown = [item for item in items if item[-2] <= x_limit]
    if len(shown) < len(items):
        logger.warning(
            f"{len(items) - len(shown)} of {len(items)} {what} start after the end of the timeline ({x_limit} s): "
            "not drawn."
        )
    return shown


def _stacked_boxes_symbol(
    legend: "Legend",
    orig_handle: "Patch",
    xdescent: float,
    ydescent: float,
    width: float,
    height: float,
    fontsize: float,
) -> "Patch":
    """Legend symbol of stacked sub-rows (a `HandlerPatch` `patch_func`): two boxes, one lower and to the right."""
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path
    from matplotlib.transforms import Affine2D

    box_width, box_height = 0.65 * width, 0.45 * height
    boxes = [
        Path.unit_rectangle().transformed(Affine2D().scale(box_width, box_height).translate(left, bottom))
        for left, bottom in (
            (-xdescent, -ydescent + height - box_height),
            (-xdescent + width - box_width, -ydescent),
        )
    ]
    return PathPatch(Path.make_compound_path(*boxes))


def _add_legend(
    figure: "Figure",
    colormap: "Colormap",
    norm: "Normalize",
    layout: _RowLayout,
    has_detections: bool,
    has_ground_truth: bool,
) -> None:
    """Explain every kind of mark `timeline_figure` drew, below the plot; nothing is added to an empty plot."""
    from matplotlib.legend_handler import HandlerPatch, HandlerTuple
    from matplotlib.patches import Patch

    outline = {"edgecolor": "black", "linewidth": 0.5}
    entries = []  # (handle, text)
    if has_detections:
        swatch = tuple(Patch(facecolor=colormap(norm(score)), **outline) for score in _SCORE_SWATCH)
        entries.append((swatch, "detection (fill: score, see colour bar)"))
    if has_ground_truth:
        entries.append((Patch(facecolor=_GROUND_TRUTH_COLOR, hatch="//", **outline), 'ground truth ("GT:" rows)'))
    if len(layout.label_spans) > 1:
        entries.append((Patch(facecolor=_SHADING_COLOR, edgecolor="0.8"), "grey band: rows of one label"))
    handler_map = {tuple: HandlerTuple(ndivide=None, pad=0)}
    if layout.stacked:
        stacked = Patch(facecolor="white", **outline)
        handler_map[stacked] = HandlerPatch(patch_func=_stacked_boxes_symbol)
        entries.append((stacked, "overlapping boxes of a label: one sub-row each, best on top"))
    if entries:
        handles, texts = zip(*entries)
        figure.legend(
            handles,
            texts,
            loc="outside lower center",
            ncols=min(len(entries), _LEGEND_COLUMNS),
            handler_map=handler_map,
            frameon=False,
            fontsize="small",
            handlelength=2.5,
            handleheight=1.2,
        )
        # Grow the figure by the legend's lines, so that the rows keep their height.
        num_lines = math.ceil(len(entries) / _LEGEND_COLUMNS)
        figure.set_figheight(figure.get_figheight() + _LEGEND_LINE_HEIGHT * num_lines)


def timeline_figure(
    detections: Sequence[Mapping],
    *,
    duration: float | None = None,
    ground_truth: Sequence[Mapping] | None = None,
    title: str | None = None,
) -> "Figure":
    r"""
    Draw the detections of one video as a timeline and return the (unsaved) matplotlib figure.

    Layout:
        - Rows are labels, ordered by their best detection (highest on top), then labels that only occur in the ground
          truth. A label with ground truth gets a second row `"GT: <label>"` (hatched boxes) right below its
          detections, so misses and false alarms are visible side by side. A label gets no detection row without
          detections and no `"GT:"` row without ground truth: there are no empty rows.
        - Boxes of one row never cover or touch each other: a box that shares any point with a box of the same label
          (detections by descending score, ground truth by start time) moves to the first sub-row below where it
          fits. Soft-NMS near-duplicates (typically a temporal IoU >= 0.5 with a higher-scoring detection) are
          therefore stacked, each with its own score colour, instead of merged: no detection is hidden or dropped.
          Each sub-row adds a row's height to the figure; pass fewer detections (the pipeline's `top_k`) for a compact
          plot.
        - The rows of every other label are shaded grey, so each label's detection, sub- and `"GT:"` rows read as one
          group.
        - A legend below the plot explains each kind of mark that is drawn; the colour bar maps fill to score.
        - Segments that start after `duration` are outside the plot: they get no box and no row, and a warning says
          how many there were.

    The figure is built without `matplotlib.pyplot`, so it neither needs a display nor touches global plotting state.

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
    parsed_ground_truth = validate_ground_truth(ground_truth) if ground_truth is not None else []
    x_limit = _timeline_end(duration, [item[-1] for item in parsed_detections + parsed_ground_truth])
    parsed_detections = _in_shown_range(parsed_detections, x_limit, "detections")
    parsed_ground_truth = _in_shown_range(parsed_ground_truth, x_limit, "ground-truth segments")
    layout = _row_layout(parsed_detections, parsed_ground_truth)

    num_rows = max(layout.num_rows, 1)
    figure = Figure(figsize=(_FIGURE_WIDTH, _MARGIN_HEIGHT + _ROW_HEIGHT * num_rows), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colormap = colormaps["viridis"]
    norm = Normalize(vmin=0.0, vmax=1.0)

    for first_row, end_row in layout.label_spans[1::2]:
        axes.axhspan(first_row - 0.5, end_row - 0.5, color=_SHADING_COLOR, zorder=0)
    bar_style = {"height": _BAR_HEIGHT, "edgecolor": "black", "linewidth": 0.5}
    if parsed_detections:
        # Weakest first, so that the strongest detection is also the topmost artist (and the last one in SVG/PDF).
        order = sorted(range(len(parsed_detections)), key=lambda index: parsed_detections[index][1])
        axes.barh(
            [layout.detection_rows[index] for index in order],
            [parsed_detections[index][3] - parsed_detections[index][2] for index in order],
            left=[parsed_detections[index][2] for index in order],
            color=[colormap(norm(parsed_detections[index][1])) for index in order],
            label="detections",
            **bar_style,
        )
    if parsed_ground_truth:
        axes.barh(
            layout.ground_truth_rows,
            [end - start for _, start, end in parsed_ground_truth],
            left=[start for _, start, _ in parsed_ground_truth],
            color=_GROUND_TRUTH_COLOR,
            hatch="//",
            label="ground truth",
            **bar_style,
        )

    axes.set_yticks(list(layout.tick_labels), list(layout.tick_labels.values()))
    # Row 0 at the top reads like a ranked list.
    axes.set_ylim(num_rows - 0.5, -0.5)
    axes.set_xlim(0.0, x_limit)
    axes.set_xlabel("time (s)")
    axes.grid(axis="x", linestyle=":", linewidth=0.5)
    if not layout.num_rows:
        axes.text(0.5, 0.5, "no detections", transform=axes.transAxes, ha="center", va="center", color="gray")
    if title is not None:
        axes.set_title(title)
    figure.colorbar(ScalarMappable(norm=norm, cmap=colormap), ax=axes, label="score", pad=0.01)
    _add_legend(figure, colormap, norm, layout, bool(parsed_detections), bool(parsed_ground_truth))
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
