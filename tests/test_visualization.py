import math
import os
import xml.etree.ElementTree as ElementTree

import pytest
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


def expected_png_size(figure):
    width, height = figure.get_size_inches() * figure.dpi
    return round(width), round(height)


def test_rows_follow_best_score_then_ground_truth_only_labels():
    figure = timeline_figure(DETECTIONS, duration=10.0, title="demo")
    assert y_tick_labels(figure) == ["high jump", "pole vault"]
    axes = figure.axes[0]
    assert axes.get_xlim() == (0.0, 10.0) and axes.get_title() == "demo"
    # One bar per detection plus the colorbar axes for the score shading.
    assert len(axes.patches) == len(DETECTIONS) and len(figure.axes) == 2

    figure = timeline_figure(DETECTIONS, ground_truth=GROUND_TRUTH)
    assert y_tick_labels(figure) == [
        "high jump",
        "GT: high jump",
        "pole vault",
        "GT: pole vault",
        "shot put",
        "GT: shot put",
    ]
    # Without a duration the axis ends at the latest segment, ground truth included.
    assert figure.axes[0].get_xlim() == (0.0, 9.0)


def test_stronger_detections_are_drawn_on_top_in_their_own_colour():
    figure = timeline_figure(DETECTIONS)
    bars = [patch for patch in figure.axes[0].patches if patch.get_y() < 0.5]  # the "high jump" row
    # Drawn weakest first, so the last bar is the 0.9 one; viridis maps it to a different colour than 0.2.
    assert [bar.get_x() for bar in bars] == [5.0, 1.0]
    assert bars[0].get_facecolor() != bars[1].get_facecolor()


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
