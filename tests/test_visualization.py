import logging
import math
import os
import xml.etree.ElementTree as ElementTree
from collections import defaultdict

import pytest
from matplotlib import colormaps
from matplotlib.colors import to_rgba
from PIL import Image

from zeetad_hf.visualization import plot_timeline, timeline_figure


DETECTIONS = [
    {"score": 0.9, "label": "high jump", "segment": {"start": 1.0, "end": 3.5}},
    {"score": 0.6, "label": "pole vault", "segment": {"start": 2.0, "end": 6.0}},
    {"score": 0.2, "label": "high jump", "segment": [5.0, 7.0]},
]
GROUND_TRUTH = [
    {"label": "high jump", "segment": [1.2, 3.0]},
    {"label": "shot put", "segment": {"start": 8.0, "end": 9.0}},
]


def y_tick_labels(figure):
    return [tick.get_text() for tick in figure.axes[0].get_yticklabels()]


def y_ticks(figure):
    """Row -> tick label of the timeline axes."""
    axes = figure.axes[0]
    return dict(zip(axes.get_yticks().tolist(), y_tick_labels(figure)))


def bars(figure, kind):
    """The boxes `timeline_figure` drew for `kind` ("detections" or "ground truth"), in drawing order."""
    return [patch for container in figure.axes[0].containers if container.get_label() == kind for patch in container]


def shading_bands(figure):
    """The patches of the timeline axes that are not boxes: the grey bands behind the rows of every other label."""
    boxes = {id(patch) for container in figure.axes[0].containers for patch in container}
    return [patch for patch in figure.axes[0].patches if id(patch) not in boxes]


def row_of(bar) -> float:
    return bar.get_y() + bar.get_height() / 2


def boxes_by_row(drawn_bars):
    """Row -> sorted `(start, end)` of the boxes drawn on it."""
    rows = defaultdict(list)
    for bar in drawn_bars:
        rows[row_of(bar)].append((bar.get_x(), bar.get_x() + bar.get_width()))
    return {row: sorted(boxes) for row, boxes in rows.items()}


def legend_entries(figure):
    """Legend text -> the handle artist drawn for it (empty without a legend)."""
    if not figure.legends:
        return {}
    legend = figure.legends[0]
    return {text.get_text(): handle for text, handle in zip(legend.texts, legend.legend_handles, strict=True)}


def expected_png_size(figure):
    width, height = figure.get_size_inches() * figure.dpi
    return round(width), round(height)


def test_rows_follow_best_score_then_ground_truth_only_labels():
    figure = timeline_figure(DETECTIONS, duration=10.0, title="demo")
    assert y_tick_labels(figure) == ["high jump", "pole vault"]
    axes = figure.axes[0]
    assert axes.get_xlim() == (0.0, 10.0) and axes.get_title() == "demo"
    # One bar per detection, one grey band behind the second label, plus the colorbar axes for the score shading.
    assert len(bars(figure, "detections")) == len(DETECTIONS) and len(figure.axes) == 2
    assert len(axes.patches) == len(DETECTIONS) + 1 and len(shading_bands(figure)) == 1

    # A "GT:" row only for labels with ground truth; "shot put" has ground truth only, so no detection row.
    figure = timeline_figure(DETECTIONS, ground_truth=GROUND_TRUTH)
    assert y_ticks(figure) == {0: "high jump", 1: "GT: high jump", 2: "pole vault", 3: "GT: shot put"}
    # Without a duration the axis ends at the latest segment, ground truth included.
    assert figure.axes[0].get_xlim() == (0.0, 9.0)


def test_stronger_detections_are_drawn_on_top_in_their_own_colour():
    figure = timeline_figure(DETECTIONS)
    bars = [patch for patch in figure.axes[0].patches if patch.get_y() < 0.5]  # the "high jump" row
    # Drawn weakest first, so the last bar is the 0.9 one; viridis maps it to a different colour than 0.2.
    assert [bar.get_x() for bar in bars] == [5.0, 1.0]
    assert bars[0].get_facecolor() != bars[1].get_facecolor()


DETECTION_ENTRY = "detection (fill: score, see colour bar)"
GROUND_TRUTH_ENTRY = 'ground truth ("GT:" rows)'
SHADING_ENTRY = "grey band: rows of one label"
STACKED_ENTRY = "overlapping boxes of a label: one sub-row each, best on top"


def test_legend_explains_every_mark_and_fits_beside_the_plot():
    figure = timeline_figure(DETECTIONS, duration=10.0, ground_truth=GROUND_TRUTH)
    entries = legend_entries(figure)
    # No two boxes of one label overlap here, so there is no entry for stacked sub-rows.
    assert list(entries) == [DETECTION_ENTRY, GROUND_TRUTH_ENTRY, SHADING_ENTRY]

    # Detections are filled with the viridis colour of their score (the swatch starts at score 0.1).
    viridis = colormaps["viridis"]
    scores = sorted(detection["score"] for detection in DETECTIONS)  # drawn weakest first
    assert [bar.get_facecolor() for bar in bars(figure, "detections")] == [to_rgba(viridis(s)) for s in scores]
    assert entries[DETECTION_ENTRY].get_facecolor() == to_rgba(viridis(0.1))
    # The ground-truth entry looks like the ground-truth boxes: same fill, same hatch.
    ground_truth_bars = bars(figure, "ground truth")
    assert len(ground_truth_bars) == len(GROUND_TRUTH)
    assert {(bar.get_facecolor(), bar.get_hatch()) for bar in ground_truth_bars} == {
        (entries[GROUND_TRUTH_ENTRY].get_facecolor(), "//")
    }
    # The grey band lies behind all rows of the second label ("pole vault", row 2) and matches its entry.
    (band,) = shading_bands(figure)
    assert (band.get_y(), band.get_height()) == (1.5, 1.0) and y_ticks(figure)[2] == "pole vault"
    assert band.get_facecolor() == entries[SHADING_ENTRY].get_facecolor()

    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legend_box = figure.legends[0].get_window_extent(renderer)
    plot_box = figure.axes[0].get_tightbbox(renderer)  # with tick labels and the x label
    assert figure.bbox.x0 <= legend_box.x0 and legend_box.x1 <= figure.bbox.x1 and figure.bbox.y0 <= legend_box.y0
    assert legend_box.y1 <= plot_box.y0  # below the plot, covering nothing
    assert figure.bbox.x0 <= plot_box.x0  # the longest row name ("GT: high jump") is not cut off


@pytest.mark.parametrize(
    "detections, ground_truth, expected_entries",
    [
        (DETECTIONS[:1], None, [DETECTION_ENTRY]),
        ([], GROUND_TRUTH[1:], [GROUND_TRUTH_ENTRY]),
        (DETECTIONS[1:2], GROUND_TRUTH[1:], [DETECTION_ENTRY, GROUND_TRUTH_ENTRY, SHADING_ENTRY]),
        ([], [], []),
    ],
)
def test_legend_has_entries_only_for_marks_that_are_drawn(detections, ground_truth, expected_entries):
    figure = timeline_figure(detections, ground_truth=ground_truth)
    assert list(legend_entries(figure)) == expected_entries
    assert len(shading_bands(figure)) == (SHADING_ENTRY in expected_entries)


# The picture: Soft-NMS kept a long weak box (1.9-30.9 s) and a near-duplicate (26-32 s, temporal IoU 0.72
# with the 25-33.3 s box) that were drawn over one another.
SLIDING = "red triangle sliding"
NEAR_DUPLICATES = [
    {"score": 0.31, "label": SLIDING, "segment": [25.0, 33.3]},
    {"score": 0.35, "label": SLIDING, "segment": [40.7, 46.5]},
    {"score": 0.12, "label": SLIDING, "segment": [1.9, 30.9]},
    {"score": 0.15, "label": SLIDING, "segment": [26.0, 32.0]},
]


def rounded(rows):
    return {row: [(round(start, 6), round(end, 6)) for start, end in boxes] for row, boxes in rows.items()}


def test_near_duplicates_are_stacked_in_sub_rows_not_drawn_over_one_another():
    ground_truth = [{"label": SLIDING, "segment": [25.2, 33.0]}, {"label": SLIDING, "segment": [40.7, 46.3]}]
    figure = timeline_figure(NEAR_DUPLICATES, duration=52.0, ground_truth=ground_truth)

    # Every detection keeps its own box (nothing merged or dropped), one sub-row per overlap, best score on top.
    detection_bars = bars(figure, "detections")
    assert len(detection_bars) == len(NEAR_DUPLICATES)
    assert rounded(boxes_by_row(detection_bars)) == {
        0.0: [(25.0, 33.3), (40.7, 46.5)],
        1.0: [(26.0, 32.0)],
        2.0: [(1.9, 30.9)],
    }
    assert rounded(boxes_by_row(bars(figure, "ground truth"))) == {3.0: [(25.2, 33.0), (40.7, 46.3)]}
    # One name per row group: the sub-rows belong to the label above them.
    assert y_ticks(figure) == {0: SLIDING, 3: "GT: " + SLIDING}
    # Each box keeps the colour of its own score.
    viridis = colormaps["viridis"]
    score_of = {detection["segment"][0]: detection["score"] for detection in NEAR_DUPLICATES}
    for bar in detection_bars:
        assert bar.get_facecolor() == to_rgba(viridis(score_of[round(bar.get_x(), 6)]))
    assert STACKED_ENTRY in legend_entries(figure)


@pytest.mark.parametrize(
    "segments, expected_rows",
    [
        ([[2.0, 4.0], [2.0, 4.0]], [0.0, 1.0]),  # exact duplicates
        ([[2.0, 4.0], [4.0, 6.0]], [0.0, 1.0]),  # touching boxes of one colour would read as one long box
        ([[2.0, 4.0], [4.5, 6.0]], [0.0, 0.0]),  # a gap between them: one row
        ([[2.0, 4.0], [3.0, 3.0]], [0.0, 1.0]),  # a zero-length detection inside a box
    ],
)
def test_boxes_of_one_label_share_a_row_only_with_a_gap_between_them(segments, expected_rows):
    detections = [
        {"score": 0.9 - index / 10, "label": "a", "segment": segment} for index, segment in enumerate(segments)
    ]
    figure = timeline_figure(detections)
    # Drawn weakest first: reverse to the input order.
    assert [row_of(bar) for bar in reversed(bars(figure, "detections"))] == expected_rows
    assert (STACKED_ENTRY in legend_entries(figure)) == (max(expected_rows) > 0)
    assert y_ticks(figure) == {0: "a"}


def test_overlapping_ground_truth_is_stacked_by_start_time():
    ground_truth = [{"label": "a", "segment": segment} for segment in ([3.0, 8.0], [1.0, 5.0], [6.0, 9.0])]
    figure = timeline_figure([], ground_truth=ground_truth)
    assert rounded(boxes_by_row(bars(figure, "ground truth"))) == {0.0: [(1.0, 5.0), (6.0, 9.0)], 1.0: [(3.0, 8.0)]}
    assert y_ticks(figure) == {0: "GT: a"}
    assert list(legend_entries(figure)) == [GROUND_TRUTH_ENTRY, STACKED_ENTRY]


def test_labels_with_nothing_in_the_shown_range_get_no_row(caplog):
    detections = DETECTIONS + [{"score": 0.99, "label": "long jump", "segment": [12.0, 14.0]}]
    ground_truth = GROUND_TRUTH + [{"label": "long jump", "segment": [11.0, 13.0]}]
    caplog.set_level(logging.WARNING, logger="zeetad_hf.visualization")
    figure = timeline_figure(detections, duration=10.0, ground_truth=ground_truth)

    # "long jump" has nothing in [0, 10] s, "pole vault" no ground truth, "shot put" no detection: no empty rows.
    assert y_ticks(figure) == {0: "high jump", 1: "GT: high jump", 2: "pole vault", 3: "GT: shot put"}
    assert figure.axes[0].get_ylim() == (3.5, -0.5)
    assert {row_of(bar) for bar in bars(figure, "detections")} == {0.0, 2.0}
    assert {row_of(bar) for bar in bars(figure, "ground truth")} == {1.0, 3.0}
    # What is left out is said, not silently dropped.
    assert [record.getMessage() for record in caplog.records] == [
        "1 of 4 detections start after the end of the timeline (10.0 s): not drawn.",
        "1 of 3 ground-truth segments start after the end of the timeline (10.0 s): not drawn.",
    ]


@pytest.mark.parametrize("with_ground_truth", [False, True])
def test_png_is_written_atomically_and_opens(tmp_path, with_ground_truth):
    ground_truth = GROUND_TRUTH if with_ground_truth else None
    output_path = tmp_path / "plots" / "timeline.png"  # the missing folder is created
    returned = plot_timeline(DETECTIONS, output_path, duration=10.0, ground_truth=ground_truth)

    assert returned == os.fspath(output_path)
    assert os.listdir(output_path.parent) == ["timeline.png"]  # no temporary file left behind
    with Image.open(output_path) as image:
        image.load()
        assert image.format == "PNG" and image.mode == "RGBA"
        expected = expected_png_size(timeline_figure(DETECTIONS, duration=10.0, ground_truth=ground_truth))
        assert image.size == expected
    assert expected[0] == 1000


def test_empty_detections_still_give_a_picture(tmp_path):
    plot_timeline([], tmp_path / "empty.png")
    with Image.open(tmp_path / "empty.png") as image:
        assert image.size[0] == 1000
    assert y_tick_labels(timeline_figure([], ground_truth=[])) == []


def test_failed_write_keeps_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    output_path = tmp_path / "timeline.png"
    output_path.write_bytes(b"previous")

    def broken_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        plot_timeline(DETECTIONS, output_path)
    assert output_path.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["timeline.png"]


@pytest.mark.parametrize(
    "detections, kwargs, message",
    [
        ([{"score": 0.5, "label": "a", "segment": {"start": 3.0, "end": 2.0}}], {}, "before its start"),
        ([{"score": 0.5, "label": "a", "segment": [0.0, math.inf]}], {}, "must be finite"),
        ([{"score": 0.5, "label": "a", "segment": [math.nan, 1.0]}], {}, "must be finite"),
        ([{"score": 0.5, "label": "a", "segment": [-1.0, 1.0]}], {}, "must be >= 0"),
        ([{"score": 0.5, "label": "a", "segment": {"start": 1.0}}], {}, "'start' and 'end'"),
        ([{"score": 0.5, "label": "a", "segment": [1.0, "x"]}], {}, "must be numbers"),
        ([{"score": 1.5, "label": "a", "segment": [0.0, 1.0]}], {}, r"in \[0, 1\]"),
        ([{"score": 0.5, "label": "", "segment": [0.0, 1.0]}], {}, "non-empty string"),
        ([[{"score": 0.5, "label": "a", "segment": [0.0, 1.0]}]], {}, "one video"),
        ([], {"duration": 0.0}, "`duration`"),
        ([], {"ground_truth": [{"label": "a", "segment": [2.0, 1.0]}]}, r"ground_truth\[0\]"),
    ],
)
def test_bad_input_raises_and_writes_nothing(tmp_path, detections, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot_timeline(detections, tmp_path / "timeline.png", **kwargs)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("output_path", ["", "."])
def test_bad_output_path_raises(output_path):
    with pytest.raises(ValueError, match="`output_path`"):
        plot_timeline(DETECTIONS, output_path)


def read_picture_format(path) -> str:
    """What the bytes of a written picture are, judged by their content only."""
    data = path.read_bytes()
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF"):
        return "pdf"
    root = ElementTree.fromstring(data)  # well-formed XML, or this raises
    assert data.lstrip().startswith(b"<?xml") and b"<svg" in data
    return "svg" if root.tag.endswith("svg") else "xml"


@pytest.mark.parametrize(
    "file_name, expected",
    [("timeline.png", "png"), ("timeline.svg", "svg"), ("timeline.pdf", "pdf"), ("Timeline.SVG", "svg")],
)
def test_the_extension_chooses_the_picture_format(tmp_path, file_name, expected):
    output_path = tmp_path / file_name
    plot_timeline(DETECTIONS, output_path, duration=10.0, ground_truth=GROUND_TRUTH, title="demo")
    assert read_picture_format(output_path) == expected
    assert os.listdir(tmp_path) == [file_name]
    if expected == "svg":
        # the labels are real text in the SVG, not pixels
        text = output_path.read_text(encoding="utf-8")
        assert "<svg" in text and "GT: high jump" in text


@pytest.mark.parametrize("file_name", ["timeline.jpg", "timeline", "timeline.svgz", "timeline.png.txt"])
def test_other_extensions_are_refused_before_drawing_and_write_nothing(tmp_path, file_name):
    extension = os.path.splitext(file_name)[1]
    found = f"the extension '{extension}'" if extension else "no extension"
    with pytest.raises(ValueError, match=rf"{file_name}' has {found}: .*PNG, SVG or PDF.*\.png, \.svg, \.pdf"):
        plot_timeline(DETECTIONS, tmp_path / file_name)
    assert os.listdir(tmp_path) == []
