"""The `zeetad` command line: `zeetad detect VIDEO ... --model DIR --labels "a,b"` writes detections as JSON and a plot.

Errors are reported by [`~zeetad_hf.cli_errors.run_command`]: one line, exit status 2 for the command line itself, 1
for a runtime error (missing or bad files, corrupt weights, an unavailable device, a full disk); `--debug` adds the
traceback.
"""

import argparse
import json
import math
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import pipeline
from transformers.utils import logging as hf_logging

from .cli_errors import ANTICIPATED_ERRORS, DEBUG_FLAG, DEBUG_HELP, ArgumentParser, UsageError, run_command
from .file_utils import check_model_folder, check_writable_directory, write_json_atomic
from .processing_zeetad import validate_labels
from .video_utils import probe_video, units_for_duration
from .visualization import plot_format, plot_timeline, validate_ground_truth


TASK = "zero-shot-temporal-action-detection"
COMMANDS = ("demo", "detect", "quickstart")
QUICKSTART_OUTPUT_DIR = "zeetad-quickstart"


def _probability(text: str) -> float:
    value = _float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text}")
    return value


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"must be true or false, got {text!r}")
    return value in ("true", "1", "yes")


def _device(text: str) -> str:
    try:
        torch.device(text)
    except (RuntimeError, ValueError) as error:
        raise argparse.ArgumentTypeError(f"not a torch device: {text!r} ({error})") from None
    return text


def check_device(device: str) -> None:
    r"""
    Check that this machine has the torch device `device` (e.g. `"cuda:1"`), before any model is loaded.

    Args:
        device (`str`):
            A torch device string.

    Raises:
        `ValueError`: naming `--device`, if the device type is not available or the index is out of range.
    """
    parsed = torch.device(device)
    if parsed.type == "cpu":
        return
    backend = torch.backends.mps if parsed.type == "mps" else getattr(torch, parsed.type, None)
    is_available = getattr(backend, "is_available", None)
    if is_available is None or not is_available():
        raise ValueError(f"--device {device!r}: this machine (torch {torch.__version__}) has no {parsed.type} device.")
    device_count = getattr(backend, "device_count", None)
    if parsed.index is not None and device_count is not None and parsed.index >= device_count():
        raise ValueError(f"--device {device!r}: this machine has {device_count()} {parsed.type} device(s).")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the `zeetad` command and its sub-commands."""
    parser = ArgumentParser(
        prog="zeetad",
        description=(
            "Zero-shot temporal action detection with ZEETAD models. Flags are spelled as transformers spells them "
            "(--top_k); the dashed spelling (--top-k) is accepted too."
        ),
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(DEBUG_FLAG, action="store_true", help=DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=ArgumentParser)
    detect = commands.add_parser(
        "detect",
        parents=[common],
        help="detect actions named by free-text labels in videos",
        description=(
            "Detect the actions named by --labels in each VIDEO and write {video: [{score, label, segment: {start, "
            "end}}, ...]} as JSON (times in seconds of the source video, detections sorted by score). With several "
            "videos, --plot PATH writes one picture per video, named PATH's stem + '_' + the video's stem."
        ),
    )
    detect.add_argument("videos", nargs="+", metavar="VIDEO", help="video files (anything FFmpeg decodes)")
    detect.add_argument(
        "--model", required=True, metavar="DIR_OR_REPO", help="folder or Hub id of a saved ZEETAD model and processor"
    )
    detect.add_argument(
        "--labels", required=True, metavar="LABELS", help='comma-separated action names, e.g. "high jump,pole vault"'
    )
    detect.add_argument(
        "--threshold", type=_probability, metavar="SCORE", help="minimum score in [0, 1] (default: the pipeline's)"
    )
    detect.add_argument(
        "--top_k", "--top-k", type=_positive_int, metavar="N", help="keep at most N detections per video"
    )
    detect.add_argument(
        "--sampling_fps",
        "--sampling-fps",
        type=_positive_float,
        metavar="FPS",
        help="frames sampled per second of video, one per temporal unit (default: the processor's)",
    )
    detect.add_argument(
        "--frame_batch_size",
        "--frame-batch-size",
        type=_positive_int,
        metavar="N",
        help="frames per vision-tower call (default: 32)",
    )
    detect.add_argument("--output", metavar="JSON", help="JSON file to write (default: print the JSON to stdout)")
    detect.add_argument(
        "--plot",
        metavar="PICTURE",
        help="timeline picture to write, as PNG, SVG or PDF by its extension (one per video for several videos)",
    )
    detect.add_argument(
        "--ground_truth",
        "--ground-truth",
        metavar="JSON",
        help=(
            "annotations drawn on the plot: a list of {label, segment} for a single video, a mapping from video "
            "(path, file name or stem) to such lists, or an ActivityNet-style {database: {video: {annotations}}}"
        ),
    )
    detect.add_argument(
        "--device",
        type=_device,
        metavar="DEVICE",
        help='torch device, e.g. "cpu" or "cuda:1" (default: the first GPU if any, else cpu)',
    )
    detect.add_argument(
        "--num_threads",
        "--num-threads",
        type=_positive_int,
        metavar="N",
        help="torch's intra-op threads on the CPU (default: torch's, one per core; see README \"Threads\")",
    )
    detect.add_argument("--no_progress", "--no-progress", action="store_true", help="do not show progress bars")
    detect.set_defaults(handler=_detect)

    quickstart = commands.add_parser(
        "quickstart",
        parents=[common],
        help="offline end-to-end run on a generated video world: CLIP pretraining, zero-shot training, evaluation",
        description=(
            "Generate a small world of videos, pretrain a small CLIP on its images and captions, train ZEETAD on the "
            "seen classes, evaluate the unseen ones beside baselines and detect on a held-out video. Stages already "
            "built with the same settings in OUTPUT_DIR are reused. OUTPUT_DIR/runs/bottleneck is a Hub-ready model "
            "folder with a filled model card; --push_to_hub uploads it."
        ),
    )
    quickstart.add_argument(
        "--output_dir", "--output-dir", default=QUICKSTART_OUTPUT_DIR, help="folder of every artefact"
    )
    quickstart.add_argument("--fast", action="store_true", help="small settings (under a minute on 2 CPU cores)")
    quickstart.add_argument("--force", action="store_true", help="rebuild every stage")
    quickstart.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="seed of the world, its seen/unseen split, the CLIP pretraining and the training (default: 0)",
    )
    quickstart.add_argument(
        "--num_threads",
        "--num-threads",
        type=_positive_int,
        metavar="N",
        help=(
            "torch's intra-op threads (default: 1, so that the numbers are the same on every machine; another count "
            "gives other numbers, cached separately)"
        ),
    )
    quickstart.add_argument(
        "--push_to_hub", "--push-to-hub", action="store_true", help="upload the model folder to the Hub after the run"
    )
    quickstart.add_argument(
        "--hub_model_id",
        "--hub-model-id",
        metavar="REPO_ID",
        help="Hub repository of --push_to_hub (default: zeetad-quickstart-bottleneck in your namespace)",
    )
    quickstart.set_defaults(handler=_quickstart)

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help='a web page to try a model in the browser (needs the demo extra: pip install -e ".[demo]")',
        description=(
            "Serve a Gradio page: upload a video, name the actions to look for, see the detections as a timeline, a "
            "table and JSON. Serves on 127.0.0.1 (this machine only) unless --host says otherwise."
        ),
    )
    demo.add_argument(
        "--model",
        metavar="DIR_OR_REPO",
        help=(
            f"folder or Hub id of a ZEETAD model that reads video files (default: the quickstart's, "
            f"{QUICKSTART_OUTPUT_DIR}/runs/bottleneck, whose held-out videos become the page's examples)"
        ),
    )
    demo.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1, this machine only)"
    )
    demo.add_argument("--port", type=_positive_int, metavar="N", help="port (default: the first free one from 7860)")
    demo.add_argument(
        "--share",
        type=_boolean,
        nargs="?",
        const=True,
        default=False,
        metavar="BOOL",
        help="also open a public gradio.live link (default: false)",
    )
    demo.add_argument(
        "--device",
        type=_device,
        metavar="DEVICE",
        help='torch device, e.g. "cpu" or "cuda:1" (default: the first GPU if any, else cpu)',
    )
    demo.set_defaults(handler=_demo)
    return parser


def parse_labels(text: str) -> list[str]:
    r"""
    Split `--labels` on commas and check the labels as the pipeline will (no blanks, no repeats ignoring case).

    Args:
        text (`str`):
            Comma-separated labels, e.g. `"high jump, pole vault"`.

    Returns:
        `list[str]`: the stripped labels, e.g. `["high jump", "pole vault"]`.
    """
    try:
        return validate_labels([label.strip() for label in text.split(",")])
    except ValueError as error:
        raise UsageError(f"--labels {text!r}: {error}") from None


def plot_paths(plot: str, videos: Sequence[str]) -> dict[str, str]:
    r"""
    Name the timeline picture of every video.

    Args:
        plot (`str`):
            The `--plot` path.
        videos (`Sequence[str]`):
            The videos, as given on the command line.

    Returns:
        `dict[str, str]`: `plot` itself for a single video; otherwise `<plot stem>_<video stem><plot suffix>` next
        to `plot` for each video (`timeline.png` and `clips/a.mp4` give `timeline_a.png`).
    """
    if len(videos) == 1:
        return {videos[0]: plot}
    base = Path(plot)
    paths = {video: str(base.with_name(f"{base.stem}_{Path(video).stem}{base.suffix}")) for video in videos}
    if len(set(paths.values())) < len(paths):
        raise UsageError("--plot: several videos share a file name stem, so their plots would overwrite each other")
    return paths


def load_ground_truth(path: str, videos: Sequence[str]) -> dict[str, list]:
    r"""
    Read and check the `--ground_truth` file.

    Args:
        path (`str`):
            A JSON file holding a list of `{"label", "segment"}` annotations (single video only), a mapping from video
            (its path as given, its file name or its stem) to such lists, or an ActivityNet-style
            `{"database": {video_id: {"annotations": [...]}}}`.
        videos (`Sequence[str]`):
            The videos, as given on the command line; each must have an entry.

    Returns:
        `dict[str, list]`: the annotations of every video.

    Raises:
        `FileNotFoundError`: if the file does not exist.
        `ValueError`: naming the file, if it is not JSON, has another structure, or lacks the annotations of a video.
    """
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except FileNotFoundError:
        raise FileNotFoundError(f"--ground_truth: file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"--ground_truth: {path} is not valid JSON ({error})") from None
    if isinstance(data, list):
        if len(videos) > 1:
            raise ValueError(
                f"--ground_truth: {path} holds one list of annotations but {len(videos)} videos were given; "
                "use a mapping from video to annotations"
            )
        data = {videos[0]: data}
    elif not isinstance(data, Mapping):
        raise ValueError(f"--ground_truth: {path} must hold a list or a mapping, got {type(data).__name__}")
    elif isinstance(data.get("database"), Mapping):
        data = {
            video: entry.get("annotations", []) if isinstance(entry, Mapping) else entry
            for video, entry in data["database"].items()
        }
    annotations = {}
    for video in videos:
        # The most specific key wins: the path as typed, then the file name, then the stem (ActivityNet/THUMOS ids).
        key = next((key for key in (video, os.path.basename(video), Path(video).stem) if key in data), None)
        if key is None:
            raise ValueError(f"--ground_truth: no annotations for {video} (looked for its path, file name and stem)")
        try:
            validate_ground_truth(data[key])
        except ValueError as error:
            raise ValueError(f"--ground_truth: annotations of {video}: {error}") from None
        annotations[video] = data[key]
    return annotations


@contextmanager
def _loading_progress_bars(enabled: bool) -> Iterator[None]:
    """transformers' own progress bars (e.g. "Loading weights") on or off, as before afterwards."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    if was_enabled and not enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled and not enabled:
            hf_logging.enable_progress_bar()


def _detect(args: argparse.Namespace) -> None:
    # 1. The command line itself (usage errors), then everything else that can be checked before the (slow) model
    # load and any decoding: the device, the output folders, the model folder's files (config, complete weights,
    # processor), the ground truth; probing names a missing or broken video.
    labels = parse_labels(args.labels)
    repeated = sorted({video for video in args.videos if args.videos.count(video) > 1})
    if repeated:
        raise UsageError(f"video(s) given more than once: {', '.join(repeated)}")
    if args.ground_truth is not None and args.plot is None:
        raise UsageError("--ground_truth is only drawn on the plot; add --plot PICTURE (.png, .svg or .pdf)")
    if args.plot is not None:
        try:
            plot_format(args.plot)
        except ValueError as error:
            raise UsageError(f"--plot {error}") from None
    plots = plot_paths(args.plot, args.videos) if args.plot is not None else {}
    if args.device is not None:
        check_device(args.device)
    outputs = {"--output": [args.output] if args.output is not None else [], "--plot": list(plots.values())}
    for flag, paths in outputs.items():
        for folder in sorted({os.path.dirname(os.path.abspath(path)) for path in paths}):
            check_writable_directory(folder, flag)
    check_model_folder(args.model, "--model")
    if args.num_threads is not None:
        torch.set_num_threads(args.num_threads)
    ground_truth = load_ground_truth(args.ground_truth, args.videos) if args.ground_truth is not None else {}
    durations = {video: probe_video(video).duration for video in args.videos}

    # 2. Model (the task is registered by `import zeetad_hf`, which importing this module implies).
    try:
        with _loading_progress_bars(not args.no_progress):
            detector = pipeline(TASK, model=args.model, device=args.device)
    except ANTICIPATED_ERRORS as error:
        # The Hub client's message for a mistyped folder ("Repo id must be in the form ...") hides the likely cause.
        if not os.path.isdir(args.model):
            raise OSError(
                f"--model {args.model!r} is not a folder and could not be loaded as a Hub id: {error}"
            ) from None
        # e.g. a config value of the wrong type: the message names the field, this names the folder
        raise ValueError(f"--model {args.model}: {error}") from error
    call_kwargs = {"candidate_labels": labels}
    for name in ("threshold", "top_k", "sampling_fps", "frame_batch_size"):
        if getattr(args, name) is not None:
            call_kwargs[name] = getattr(args, name)

    # 3. Detect, one video at a time; the bar advances with every embedded chunk of sampled frames (temporal units).
    # Without a declared duration the total number of frames is unknown.
    sampling_fps = args.sampling_fps or detector.processor.feature_extractor.sampling_fps
    units = {
        video: None if duration is None else units_for_duration(duration, sampling_fps)
        for video, duration in durations.items()
    }
    total = None if None in units.values() else sum(units.values())
    results = {}
    with tqdm(total=total, unit="frame", disable=args.no_progress, dynamic_ncols=True) as progress:
        for video in args.videos:
            progress.set_description(os.path.basename(video))
            results[video] = detector(video, progress_callback=progress.update, **call_kwargs)

    # 4. Write outputs only once every video succeeded, so a failure leaves no partial results.
    # What was written is said on stderr: stdout holds nothing but the JSON when --output is absent.
    for video, plot in plots.items():
        plot_timeline(
            results[video],
            plot,
            duration=durations[video],
            ground_truth=ground_truth.get(video),
            title=os.path.basename(video),
        )
        print(f"wrote timeline {plot}", file=sys.stderr)
    if args.output is None:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        write_json_atomic(args.output, results)
        noun = "video" if len(results) == 1 else "videos"
        print(f"wrote detections of {len(results)} {noun} to {args.output}", file=sys.stderr)


def _quickstart(args: argparse.Namespace) -> None:
    from .quickstart import push_quickstart_model, quickstart_summary, run_quickstart

    if args.hub_model_id is not None and not args.push_to_hub:
        raise UsageError(
            f"--hub_model_id ({args.hub_model_id!r}) names the repository of a push: add --push_to_hub, or leave "
            "--hub_model_id out"
        )
    check_writable_directory(args.output_dir, "--output_dir")
    results = run_quickstart(
        args.output_dir, fast=args.fast, force=args.force, seed=args.seed, num_threads=args.num_threads
    )
    print(results["table"])
    print()
    # flushed: a failed push writes its line to stderr, and the results must come first where both streams meet
    print(quickstart_summary(results, args.output_dir), flush=True)
    # The upload comes last, so that a failed one (no network, no token) reports one line after the results.
    if args.push_to_hub:
        repo_id = push_quickstart_model(results["model_dir"], args.hub_model_id)
        print(f"\nPushed {results['model_dir']} to the Hub repository {repo_id}.")


def _demo(args: argparse.Namespace) -> None:
    from .demo import import_gradio, launch_demo
    from .quickstart import MODEL_VARIANT

    model = args.model
    if model is None:
        model = os.path.join(QUICKSTART_OUTPUT_DIR, "runs", MODEL_VARIANT)
        if not os.path.isdir(model):
            raise UsageError(
                f"no --model given and no quickstart model in {model}: run `zeetad quickstart` first (about 6 "
                "minutes on 2 CPU cores, `--fast` under one), or pass --model DIR_OR_REPO"
            )
    import_gradio()  # says how to install it, before anything slow
    if args.device is not None:
        check_device(args.device)
    if os.path.isdir(model):
        check_model_folder(model, "--model")
    print(f"Loading {model} ...", file=sys.stderr, flush=True)

    def ready(url: str, seconds: float) -> None:
        print(f"Serving the demo on {url} ({seconds:.1f} s after the model was loaded); Ctrl-C stops it.", flush=True)

    launch_demo(model, host=args.host, port=args.port, share=args.share, device=args.device, on_ready=ready)


def _run(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    args.handler(args)


def main(argv: Sequence[str] | None = None) -> int:
    r"""
    Run the `zeetad` command line.

    Args:
        argv (`Sequence[str]`, *optional*):
            Arguments without the program name; defaults to `sys.argv[1:]`.

    Returns:
        `int`: the exit status (see [`~zeetad_hf.cli_errors.run_command`]): 0 on success, 2 for a usage error, 1 for a
        runtime error, each reported as one line on stderr (`zeetad <command>: error: ...`; `--debug` adds the
        traceback); 0 after `--help`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    # the command is the first argument that is not an option (the top-level parser has no option taking a value)
    command = next((argument for argument in argv if not argument.startswith("-")), None)
    program = f"zeetad {command}" if command in COMMANDS else "zeetad"
    try:
        return run_command(_run, program, argv)
    except SystemExit as exit_request:
        # argparse exits after --help; callers of `main` get the status like any other
        return 0 if exit_request.code is None else exit_request.code


if __name__ == "__main__":
    sys.exit(main())
