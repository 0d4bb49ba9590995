"""The browser demo (`zeetad demo`, `examples/app.py`): a Gradio page around the zero-shot detection pipeline.

Drop a video, type what to look for, and see the detections as the package's timeline figure, as a table and as the
pipeline's JSON. [`DemoDetector`] does the work and knows nothing of Gradio; [`build_demo`] is the page, and
[`launch_demo`] serves it. Gradio is an optional dependency (`pip install -e ".[demo]"`); importing this module does
not need it, building the page does.
"""

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import av

from .cli_errors import ANTICIPATED_ERRORS, MissingOptionalDependency
from .configuration_zeetad import PIPELINE_TASK
from .file_utils import write_json_atomic
from .processing_zeetad import validate_labels
from .video_utils import probe_video, units_for_duration
from .visualization import plot_timeline


DEMO_INSTALL_COMMAND = 'pip install -e ".[demo]"'
TABLE_HEADERS = ["label", "start (s)", "end (s)", "score"]
# What the table shows: seconds to 0.01 s, scores to 0.001 (the JSON download keeps every digit).
SECONDS_DECIMALS, SCORE_DECIMALS = 2, 3
DEFAULT_THRESHOLD, DEFAULT_TOP_K = 0.1, 10
# Codecs, pixel formats and containers that Chromium, Firefox and Safari play in a <video> element; anything else is
# shown through an H.264 copy (the detections always come from the uploaded file itself).
BROWSER_CODECS = {"h264", "vp8", "vp9", "av1"}
BROWSER_PIXEL_FORMATS = {"yuv420p", "yuvj420p"}
BROWSER_CONTAINERS = {"mp4", "mov", "webm", "matroska"}
# Preview heights: tiny videos (the quickstart world's are 64 pixels high) are scaled up to be seen, large ones down.
PREVIEW_MIN_HEIGHT, PREVIEW_MAX_HEIGHT = 256, 480


def import_gradio():
    """Import Gradio, or say which command installs it."""
    try:
        import gradio
    except ModuleNotFoundError as error:
        if error.name != "gradio":
            raise
        raise MissingOptionalDependency(
            f"the demo needs gradio, which is not installed: run `{DEMO_INSTALL_COMMAND}` in the zeetad_hf clone "
            '(or `pip install "zeetad_hf[demo]"`)',
            name="gradio",
        ) from None
    return gradio


class DemoExample(NamedTuple):
    """A clickable example of the page: a video, the labels to look for, and its annotations if it has any."""

    video: str
    candidate_labels: list[str]
    ground_truth: list[dict] | None = None


class DemoResult(NamedTuple):
    """What one click of "Detect" shows."""

    detections: list[dict]  # the pipeline's output, sorted by score
    candidate_labels: list[str]  # the labels looked for
    table: list[list]  # TABLE_HEADERS rows, sorted by start time, rounded for display
    timeline_path: str  # PNG of the timeline figure
    json_path: str  # the pipeline's output with the call's settings, for download


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes: how an upload is recognised as an example whatever its name in Gradio's cache."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_candidate_labels(text: str | None) -> list[str]:
    r"""
    Split the page's comma-separated labels and check them as the pipeline does.

    Raises:
        `ValueError`: if there is no label, a blank one, or a repeat (ignoring case).
    """
    if text is None or not text.strip():
        raise ValueError("Type the actions to look for, separated by commas (e.g. 'high jump, pole vault').")
    return validate_labels([label.strip() for label in text.split(",")])


def detection_table(detections: Sequence[dict]) -> list[list]:
    r"""
    The rows of the page's table: `[label, start, end, score]` per detection, sorted by start time (then end, then
    best score first), seconds rounded to 0.01 and scores to 0.001.
    """
    rows = [
        [
            item["label"],
            round(item["segment"]["start"], SECONDS_DECIMALS),
            round(item["segment"]["end"], SECONDS_DECIMALS),
            round(item["score"], SCORE_DECIMALS),
        ]
        for item in detections
    ]
    return sorted(rows, key=lambda row: (row[1], row[2], -row[3], row[0]))


def _is_browser_playable(path: str) -> bool:
    with av.open(path) as container:
        streams = container.streams.video
        if not streams:
            return False
        codec = streams[0].codec_context
        formats = set(container.format.name.split(","))
        return (
            codec.name in BROWSER_CODECS
            and codec.pix_fmt in BROWSER_PIXEL_FORMATS
            and bool(formats & BROWSER_CONTAINERS)
        )


def browser_playable_video(path: str, output_dir: str | os.PathLike) -> str:
    r"""
    A copy of the video that browsers play, or `path` itself when they already do.

    Browsers play H.264, VP8/9 and AV1 in 4:2:0 only; other videos (e.g. the quickstart world's H.264 4:4:4) are
    re-encoded to H.264 4:2:0 between `PREVIEW_MIN_HEIGHT` and `PREVIEW_MAX_HEIGHT` pixels high, with the source's
    frame timestamps, without audio. The copy is only shown: the detections come from the original file.

    Raises:
        `ValueError`: naming the file, if PyAV cannot decode it.
        `OSError`: if it does not exist or the copy cannot be written.
    """
    os.makedirs(output_dir, exist_ok=True)
    try:
        if _is_browser_playable(path):
            return path
        output_path = os.path.join(output_dir, Path(path).stem + "_preview.mp4")
        with av.open(path) as source, av.open(output_path, "w") as target:
            source_stream = source.streams.video[0]
            source_stream.thread_type = "AUTO"
            height = min(max(source_stream.codec_context.height, PREVIEW_MIN_HEIGHT), PREVIEW_MAX_HEIGHT)
            # even sizes: 4:2:0 halves both
            height -= height % 2
            width = round(source_stream.codec_context.width * height / source_stream.codec_context.height)
            width -= width % 2
            target_stream = target.add_stream("libx264", rate=source_stream.average_rate or 25)
            target_stream.width, target_stream.height, target_stream.pix_fmt = width, height, "yuv420p"
            target_stream.options = {"preset": "veryfast", "crf": "23"}
            for frame in source.decode(source_stream):
                converted = frame.reformat(width=width, height=height, format="yuv420p")
                # the source's timestamps (PyAV rescales them to the encoder's time base): times in the page match
                converted.pts, converted.time_base = frame.pts, frame.time_base
                target.mux(target_stream.encode(converted))
            target.mux(target_stream.encode(None))
        return output_path
    except OSError:
        raise  # a missing file, a full disk: not the video's fault
    except (av.FFmpegError, IndexError) as error:
        raise ValueError(f"{os.path.basename(path)}: not a video that FFmpeg can decode ({error})") from None


class DemoDetector:
    r"""
    The demo's work, without the page: run the pipeline on an uploaded file and turn its output into the timeline,
    the table and the JSON download.

    Args:
        model (`str`):
            Folder or Hub id of a ZEETAD model with a CLIP vision tower (one that reads video files).
        examples (`Sequence[DemoExample]`, *optional*):
            Videos offered as examples; an upload with the same bytes as one of them gets its ground truth drawn.
        device (`str`, *optional*):
            Torch device of the pipeline.
        work_dir (`str`, *optional*):
            Where timelines, JSON files and preview copies go (default: a new temporary folder).
    """

    def __init__(
        self,
        model: str,
        examples: Sequence[DemoExample] = (),
        device: str | None = None,
        work_dir: str | None = None,
    ):
        from transformers import pipeline

        self.pipeline = pipeline(PIPELINE_TASK, model=model, device=device)
        if not getattr(self.pipeline.model.config, "vision_config", None):
            raise ValueError(
                f"--model {model}: the demo needs a model that reads video files (one with a CLIP vision tower, e.g. "
                "the quickstart's or `from_clip(..., load_vision=True)`); this one takes pre-computed features."
            )
        self.examples = list(examples)
        # (size in bytes, SHA-256) -> annotations: an upload is only hashed when its size is an example's
        self._ground_truth_by_file = {
            (os.path.getsize(example.video), file_digest(example.video)): example.ground_truth
            for example in self.examples
            if example.ground_truth
        }
        self.work_dir = work_dir or tempfile.mkdtemp(prefix="zeetad-demo-")

    def _ground_truth_of(self, video: str) -> list[dict] | None:
        size = os.path.getsize(video)
        if not any(size == example_size for example_size, _ in self._ground_truth_by_file):
            return None
        return self._ground_truth_by_file.get((size, file_digest(video)))

    def preview(self, video: str) -> str:
        """The video as browsers play it (see [`browser_playable_video`])."""
        return browser_playable_video(video, tempfile.mkdtemp(dir=self.work_dir))

    def detect(
        self,
        video: str,
        labels_text: str,
        threshold: float = DEFAULT_THRESHOLD,
        top_k: int | None = DEFAULT_TOP_K,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> DemoResult:
        r"""
        Detect the comma-separated labels in the video.

        Args:
            video (`str`): path of the uploaded file.
            labels_text (`str`): comma-separated action names.
            threshold (`float`): minimum score in `[0, 1]`.
            top_k (`int`, *optional*): at most this many detections.
            progress (`Callable[[int, int | None], None]`, *optional*):
                Called with (frames embedded so far, total frames or `None`) after every chunk of frames.

        Raises:
            `ValueError`, `FileNotFoundError`: naming the input, for what the pipeline rejects (not a video, corrupt,
            too short, bad labels or settings).
        """
        if not video:
            raise ValueError("Upload a video first (or click one of the examples).")
        labels = parse_candidate_labels(labels_text)
        info = probe_video(video)
        sampling_fps = self.pipeline.processor.feature_extractor.sampling_fps
        total = None if info.duration is None else units_for_duration(info.duration, sampling_fps)
        done = 0

        def advance(frames: int) -> None:
            nonlocal done
            done += frames
            if progress is not None:
                progress(done, total)

        call = {"candidate_labels": labels, "threshold": threshold}
        if top_k is not None:
            call["top_k"] = int(top_k)
        detections = self.pipeline(video, progress_callback=advance, **call)

        output_dir = tempfile.mkdtemp(dir=self.work_dir)
        name = os.path.basename(video)
        timeline_path = plot_timeline(
            detections,
            os.path.join(output_dir, "timeline.png"),
            duration=info.duration,
            ground_truth=self._ground_truth_of(video),
            title=name,
        )
        json_path = os.path.join(output_dir, f"{Path(name).stem}_detections.json")
        write_json_atomic(json_path, {"video": name, **call, "detections": detections})
        return DemoResult(detections, labels, detection_table(detections), timeline_path, json_path)


def quickstart_examples(model: str, count: int = 4) -> list[DemoExample]:
    r"""
    The first `count` held-out videos of the quickstart run that trained `model`, with the unseen classes as labels
    and their annotations; none when `model` is not a quickstart model folder.
    """
    from .quickstart import held_out_videos, quickstart_world

    world_dir = quickstart_world(model) if os.path.isdir(model) else None
    if world_dir is None:
        return []
    unseen = json.loads((world_dir / "split.json").read_text())["unseen"]
    return [
        DemoExample(str(video.path), unseen, video.ground_truth)
        for video in held_out_videos(world_dir, unseen)[:count]
    ]


def build_demo(detector: DemoDetector):
    r"""
    The demo page (a `gradio.Blocks`) around `detector`: a video upload and the examples; the labels, a threshold
    slider and a top-k box; the video, the timeline, the table of detections and the JSON download. Bad input shows
    its message in the page.
    """
    gr = import_gradio()

    def error_text(error: Exception, video: str | None) -> str:
        # the upload's name, not its path in Gradio's cache
        message = str(error).replace(video, os.path.basename(video)) if video else str(error)
        return f"**Error:** {message}"

    def show_video(video):
        if not video:
            return None, ""
        try:
            return detector.preview(video), ""
        except ANTICIPATED_ERRORS as error:
            return None, error_text(error, video)

    def run(video, labels_text, threshold, top_k, progress=gr.Progress()):
        def report(done: int, total: int | None) -> None:
            progress((done, total) if total else None, desc="Decoding and embedding frames", unit="frames")

        try:
            result = detector.detect(video, labels_text, threshold, top_k or None, progress=report)
        except ANTICIPATED_ERRORS as error:
            return None, [], None, error_text(error, video)
        count, num_labels = len(result.detections), len(result.candidate_labels)
        detections_text = f"{count} detection{'s' if count != 1 else ''}"
        status = f"{detections_text} of {num_labels} candidate label{'s' if num_labels != 1 else ''}."
        return result.timeline_path, result.table, result.json_path, status

    with gr.Blocks(title="ZEETAD: zero-shot temporal action detection") as page:
        gr.Markdown(
            "# ZEETAD: zero-shot temporal action detection\n"
            "Upload a video and name the actions to look for: the model finds when each happens, also for actions it "
            "never trained on."
        )
        with gr.Row():
            with gr.Column(scale=2):
                upload = gr.File(label="Video file", elem_id="zeetad-upload")
                labels = gr.Textbox(
                    label="Actions to look for (comma-separated)",
                    placeholder="high jump, pole vault",
                    elem_id="zeetad-labels",
                )
                threshold = gr.Slider(0, 1, value=DEFAULT_THRESHOLD, step=0.01, label="Minimum score")
                top_k = gr.Number(value=DEFAULT_TOP_K, precision=0, minimum=1, label="At most this many detections")
                button = gr.Button("Detect", variant="primary", elem_id="zeetad-detect")
                if detector.examples:
                    gr.Examples(
                        [[example.video, ", ".join(example.candidate_labels)] for example in detector.examples],
                        inputs=[upload, labels],
                        label="Held-out videos of the quickstart world (unseen classes, with their ground truth)",
                    )
            with gr.Column(scale=3):
                video = gr.Video(label="Video", interactive=False, height=300, elem_id="zeetad-video")
                status = gr.Markdown(elem_id="zeetad-status")
                timeline = gr.Image(label="Timeline", type="filepath", interactive=False, elem_id="zeetad-timeline")
                table = gr.Dataframe(
                    headers=TABLE_HEADERS,
                    datatype=["str", "number", "number", "number"],
                    interactive=False,
                    label="Detections, by start time",
                    elem_id="zeetad-table",
                )
                download = gr.File(label="Detections (JSON)", interactive=False, elem_id="zeetad-json")
        # one queue for both: a detection pressed while the upload's preview is made runs after it, so the preview
        # cannot clear the detection's status line
        upload.change(show_video, inputs=upload, outputs=[video, status], concurrency_id="detector")
        button.click(
            run,
            inputs=[upload, labels, threshold, top_k],
            outputs=[timeline, table, download, status],
            concurrency_id="detector",
        )
    return page


def launch_demo(
    model: str,
    host: str | None = "127.0.0.1",
    port: int | None = None,
    share: bool = False,
    device: str | None = None,
    on_ready: Callable[[str, float], None] | None = None,
):
    r"""
    Load the model, build the page and serve it (blocks until interrupted).

    Args:
        model (`str`): folder or Hub id of the model.
        host (`str`, *optional*):
            Address to serve on; `127.0.0.1` (the default) is reachable from this machine only. `None` leaves it to
            Gradio: the `GRADIO_SERVER_NAME` variable (which Spaces set), else `127.0.0.1`.
        port (`int`, *optional*): port; by default `GRADIO_SERVER_PORT`, else Gradio's first free one from 7860.
        share (`bool`): also open a public Gradio share link.
        device (`str`, *optional*): torch device of the pipeline.
        on_ready (`Callable[[str, float], None]`, *optional*):
            Called with the page's local URL and the seconds from the loaded model to the served page.
    """
    import_gradio()  # before the (slow) model load
    detector = DemoDetector(model, quickstart_examples(model), device=device)
    loaded = time.perf_counter()
    page = build_demo(detector)
    # allowed_paths: the examples live outside Gradio's cache (their folder only, never the working directory)
    allowed = sorted({os.path.dirname(example.video) for example in detector.examples})
    page.queue(default_concurrency_limit=1)
    page.launch(
        server_name=host,
        server_port=port,
        share=share,
        prevent_thread_lock=True,
        allowed_paths=allowed,
        quiet=True,
    )
    if on_ready is not None:
        on_ready(page.local_url, time.perf_counter() - loaded)
    try:
        page.block_thread()
    finally:
        page.close()


__all__ = [
    "DemoDetector",
    "DemoExample",
    "DemoResult",
    "browser_playable_video",
    "build_demo",
    "detection_table",
    "import_gradio",
    "launch_demo",
    "parse_candidate_labels",
    "quickstart_examples",
]
