"""Every command, flag and snippet of README.md and examples/README.md runs as written.

The documents' fenced `python` blocks and `bash` commands are extracted and run, unchanged, in one working folder
prepared as a user's would be, with what cannot exist here replaced by small stand-ins (the README says so):
- a local Hub stand-in (tests/fakehub.py) serves a tiny random CLIP (512-d joint space, 32x32 vision tower) under
  `openai/clip-vit-base-patch16`, the only model id the documents download;
- `zeetad-quickstart/` is what `zeetad quickstart --fast` wrote (the `quickstart_fast_run` fixture runs the command);
- `match.mp4`, `a.mp4`, `b.mp4` and `videos/` are short mp4s written by PyAV; `data/thumos14/` and `data/activitynet/`
  hold miniatures of the real annotation and feature files (same formats, real class names, a few short videos).
Each command must exit with status 0 and write every file or folder it names with `--output`, `--output_dir` or
`--plot`; a command that serves a page (`zeetad demo`, `examples/app.py`) must answer on 127.0.0.1, then is stopped.
Commands that take many minutes here (the full quickstart, loops over 10 splits) are marked slow and run with
`RUN_SLOW=1`. The two commands CI itself runs (the setup line and the test command) are checked against
`.ci/run` instead of being run inside the suite. Commands quoted inline (tables, prose) must name a program that
exists and only flags that its `--help` lists.
"""

import contextlib
import importlib.util
import io
import json
import os
import re
import runpy
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fakehub import serve_in_subprocess

from zeetad_hf.zero_shot_splits import load_zero_shot_split


ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "examples/README.md")
BIN = Path(sys.executable).parent
CLIP_ID = "openai/clip-vit-base-patch16"
CLIP_EMBEDDING_DIM = 512
# Commands that take minutes on 2 cores (patterns of their words), and those that read what they wrote: RUN_SLOW=1
# only, to keep the default suite under its time budget.
SLOW_COMMANDS = (
    r"zeetad quickstart$",  # the full quickstart, 5.5 to 10 minutes
    r"for split in ",  # ten training runs
    r"python examples/evaluate\.py .*--all_splits",  # scores what those ten runs wrote
    r"accelerate launch --multi_gpu --num_processes 4 .*activitynet",  # the GPU line: 4 processes, ~70 s on 2 cores
    r"python examples/evaluate\.py .*--model_name_or_path runs/anet_",  # runs the model that line trained
    # the one-process alternative of the 2-process THUMOS14 line, which runs by default (same recipe and script)
    r"python examples/train\.py examples/configs/thumos14_i3d_clip\.json --split 0 ",
)
# Commands CI runs itself (.ci/run), checked there rather than run inside the suite.
CI_COMMANDS = ("python3 -m venv", "python -m pytest")
# Commands that serve a web page until stopped: run until the page answers, then stopped.
SERVING_COMMANDS = (r"zeetad demo", r"(\w+=\S+ )*python examples/app\.py")
SERVING_LINE = re.compile(r"Serving the demo on (http://127\.0\.0\.1:\d+/)")


@dataclass(frozen=True)
class Snippet:
    document: str
    line: int
    language: str
    text: str

    def __str__(self) -> str:
        return f"{self.document}:{self.line}"


def fenced_blocks(document: str) -> list[Snippet]:
    """The fenced code blocks of `document` with their language tag and first line number."""
    text = (ROOT / document).read_text(encoding="utf-8")
    blocks = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        line = text.count("\n", 0, match.start(2)) + 1
        blocks.append(Snippet(document, line, match[1], match[2]))
    return blocks


def shell_commands(block: Snippet) -> list[Snippet]:
    """The commands of a `bash` block: continuation lines joined, a `for ... done` loop kept whole, comments dropped."""
    commands, current, start = [], [], 0
    for offset, line in enumerate(block.text.splitlines()):
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not current:
            start = block.line + offset
        current.append(line)
        in_loop = current[0].lstrip().startswith("for ") and line.strip() != "done"
        if not line.rstrip().endswith("\\") and not in_loop:
            commands.append(Snippet(block.document, start, "bash", "\n".join(current) + "\n"))
            current = []
    return commands


def documented(language: str) -> list[Snippet]:
    blocks = [block for document in DOCUMENTS for block in fenced_blocks(document) if block.language == language]
    return [command for block in blocks for command in shell_commands(block)] if language == "bash" else blocks


def inline_commands() -> list[Snippet]:
    """Commands quoted in backticks in the prose and tables: `zeetad ...`, `python examples/...`, `accelerate ...`."""
    pattern = re.compile(
        r"`((?:zeetad (?:demo|detect|quickstart)(?=[\s`])|python (?:examples|benchmarks)/|accelerate launch)[^`]*)`"
    )
    commands = []
    for document in DOCUMENTS:
        text = (ROOT / document).read_text(encoding="utf-8")
        # a quoted command may wrap onto the next line of the Markdown source
        for match in pattern.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            commands.append(Snippet(document, line, "inline", " ".join(match[1].split())))
    return commands


def marks(command: Snippet) -> list:
    words = " ".join(shlex.split(command.text.replace("\\\n", " ").split("\n")[0], comments=True))
    return [pytest.mark.slow] if any(re.match(pattern, words) for pattern in SLOW_COMMANDS) else []


def test_the_documents_hold_commands_and_snippets():
    # the extraction itself: a broken pattern would silently test nothing
    assert len(documented("python")) >= 2
    assert len(documented("bash")) >= 10
    assert len(inline_commands()) >= 10
    assert {block.language for document in DOCUMENTS for block in fenced_blocks(document)} <= {"python", "bash", ""}


# ---------------------------------------------------------------------------------------------------------------------
# The commands CI runs


def test_ci_runs_the_documented_setup_and_test_commands():
    ci_script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    ci_lines = [line.strip() for line in ci_script.splitlines()]
    setup = next(command for command in documented("bash") if command.text.startswith("python3 -m venv"))
    steps = [step.strip() for step in setup.text.split("\n")[0].split("&&")]
    # CI's environment lives in .venv-ci, so that a developer's .venv survives a local CI run
    assert steps[:2] == ["python3 -m venv .venv", ". .venv/bin/activate"]
    assert ci_lines.count("python3 -m venv .venv-ci") == 1 and ci_lines.count(". .venv-ci/bin/activate") == 1
    for step in steps[2:]:
        assert step in ci_lines, f"{setup}: CI does not run `{step}`"
    test_command = next(command for command in documented("bash") if command.text.startswith("python -m pytest"))
    assert [line for line in ci_lines if line and not line.startswith("#")][-1] == test_command.text.strip()


def test_what_the_documents_write_in_a_clone_is_ignored_by_git():
    # a clone used as the working folder stays clean: `git status` after following the documents lists nothing new
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse"], capture_output=True).returncode != 0:
        pytest.skip("not a git work tree")
    written = {path for command in documented("bash") for path in written_paths(command.text)}
    written |= {"zeetad-quickstart/results.json", "zeetad-thumos/config.json", "data/thumos14/thumos14.json"}
    ignored = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "--no-index", *sorted(written)], capture_output=True, text=True
    ).stdout.split()
    assert sorted(written - set(ignored)) == []


# ---------------------------------------------------------------------------------------------------------------------
# Inline commands: the program exists and has every flag


def help_text(program: tuple[str, str], monkeypatch) -> str:
    """What `PROGRAM --help` prints, run in this process (where the programs' imports are already loaded)."""
    kind, name = program
    if kind == "accelerate":
        from accelerate.commands.launch import launch_command_parser

        # its help formatter lists only some options, depending on the process: list the parser's own options
        return "\n".join(launch_command_parser()._option_string_actions)
    buffer = io.StringIO()
    with monkeypatch.context() as patch, contextlib.redirect_stdout(buffer):
        if kind == "zeetad":
            from zeetad_hf.cli import main

            assert main([name, "--help"]) == 0
        else:
            patch.setattr(sys, "argv", [name, "--help"])
            patch.syspath_prepend(str(Path(name).parent))  # the benchmarks import their shared helpers
            with pytest.raises(SystemExit) as exit_info:
                runpy.run_path(name, run_name="__main__")
            assert exit_info.value.code in (0, None), f"{name} --help exited with {exit_info.value.code}"
    return buffer.getvalue()


def programs(command: str) -> list[tuple[tuple[str, str], list[str]]]:
    """`((kind, name), its flags)` pairs of a command line: `accelerate launch ... SCRIPT ...` gives two."""
    words = shlex.split(command.replace("[", " ").replace("]", " ").replace("...", " "))
    if words[0] == "zeetad":
        return [(("zeetad", words[1]), [word for word in words[2:] if word.startswith("--")])]
    script_index = next((index for index, word in enumerate(words) if word.endswith(".py")), len(words))
    pairs = []
    if words[0] == "accelerate":
        pairs.append((("accelerate", "launch"), [word for word in words[2:script_index] if word.startswith("--")]))
    if script_index < len(words):
        script_flags = [word for word in words[script_index:] if word.startswith("--")]
        pairs.append((("script", str(ROOT / words[script_index])), script_flags))
    return pairs


def test_inline_commands_name_existing_programs_and_flags(monkeypatch):
    helps, missing = {}, []
    for command in inline_commands():
        for program, flags in programs(command.text):
            if program[0] == "script" and not Path(program[1]).is_file():
                missing.append(f"{command}: no such script {program[1]}")
                continue
            if program not in helps:
                helps[program] = help_text(program, monkeypatch)
            missing += [
                f"{command}: {' '.join(program)} has no flag {flag.split('=')[0]}"
                for flag in flags
                if not re.search(rf"(^|[\s,\[]){re.escape(flag.split('=')[0])}([\s,=\]]|$)", helps[program], re.M)
            ]
    assert not missing, "\n".join(missing)


# ---------------------------------------------------------------------------------------------------------------------
# The working folder


def child_env(endpoint: str | None = None, hf_home: Path | None = None) -> dict[str, str]:
    """The environment of a documented command: this venv first on PATH; with `endpoint`, online against the local Hub
    stand-in (its tiny CLIP under `openai/clip-vit-base-patch16`) instead of offline."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    if endpoint is not None:
        env.pop("HF_HUB_OFFLINE", None)
        env.update(HF_ENDPOINT=endpoint, HF_HOME=str(hf_home), HF_TOKEN="hf_fake_token", HF_HUB_DISABLE_XET="1")
    return env


# Run in a child process online against the stand-in Hub: a tiny random CLIP published as `openai/clip-vit-base-patch16`.
PUBLISH_TINY_CLIP = """
import sys, tempfile
from huggingface_hub import HfApi
from tiny_models import save_tiny_clip
from zeetad_hf import build_clip_tokenizer

repo_id, projection_dim, words = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
with tempfile.TemporaryDirectory() as folder:
    save_tiny_clip(folder, build_clip_tokenizer(words, model_max_length=16), projection_dim=projection_dim)
    HfApi().create_repo(repo_id)
    HfApi().upload_folder(repo_id=repo_id, folder_path=folder)
"""


def class_names(dataset: str) -> list[str]:
    seen, unseen = load_zero_shot_split(dataset, "75_25", 0)
    return sorted(seen + unseen)


def publish_tiny_clip(env: dict[str, str]) -> None:
    words = {"a", "video", "of", "person", "high", "jump", "pole", "vault", "shot", "put", "diving", "swimming"}
    words |= {
        word.lower()
        for dataset in ("thumos14", "activitynet")
        for name in class_names(dataset)
        for word in name.split()
    }
    subprocess.run(
        [sys.executable, "-c", PUBLISH_TINY_CLIP, CLIP_ID, str(CLIP_EMBEDDING_DIM), " ".join(sorted(words))],
        cwd=Path(__file__).parent,
        env=env,
        check=True,
        timeout=120,
    )


def write_videos(folder: Path) -> None:
    """Short noisy 64x48 mp4s under the names the documents use."""
    from zeetad_hf.synthetic_world import write_mp4

    generator = np.random.default_rng(0)
    for name in ("match.mp4", "a.mp4", "b.mp4", "videos/warm_up.mp4", "videos/match_2.mp4"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        frames = (generator.integers(0, 256, (48, 48, 64, 3), dtype=np.uint8)[index] for index in range(48))
        write_mp4(folder / name, frames, fps=8)


def annotated_videos(names: list[str], num_videos: int, per_video: int, duration: float) -> list[list[dict]]:
    """`num_videos` annotation lists cycling through `names`, `per_video` disjoint 2 s actions each."""
    return [
        [
            {"label": names[(video * per_video + slot) % len(names)], "segment": [1.0 + 3 * slot, 3.0 + 3 * slot]}
            for slot in range(per_video)
            if 3.0 + 3 * slot < duration
        ]
        for video in range(num_videos)
    ]


def write_thumos14(folder: Path) -> None:
    """ActionFormer's `thumos14.json` layout, 2048-d I3D-like and 512-d CLIP-like features: 2 short training videos
    (one step per epoch at the recipe's batch of 2: the recipe's 35 epochs dominate the suite's time) and 4 test
    videos, which hold every class."""
    generator = np.random.default_rng(1)
    names, duration, fps = class_names("thumos14"), 20.0, 10.0
    units = int((duration * fps - 16) / 4) + 1
    database = {}
    for subset, prefix, count in (("Validation", "video_validation", 2), ("Test", "video_test", 4)):
        for index, annotations in enumerate(annotated_videos(names, count, 5, duration)):
            video_id = f"{prefix}_{index:07d}"
            database[video_id] = {"subset": subset, "duration": duration, "fps": fps, "annotations": annotations}
            for kind, dim in (("i3d_features", 2048), ("clip_features", CLIP_EMBEDDING_DIM)):
                (folder / kind).mkdir(parents=True, exist_ok=True)
                np.save(folder / kind / f"{video_id}.npy", generator.standard_normal((units, dim), dtype=np.float32))
    (folder / "thumos14.json").write_text(json.dumps({"version": "stand-in", "database": database}))


def write_activitynet(folder: Path) -> None:
    """BMN's `anet_anno_action.json` + `anet_video_info.csv` layout, 512-d TSP-like and CLIP-like features."""
    generator = np.random.default_rng(2)
    names, duration = class_names("activitynet"), 30.0
    annotations, rows = {}, ["video,numFrame,seconds,fps,rfps,subset,featureFrame"]
    for subset, count in (("training", 16), ("validation", 8)):
        for index, video_annotations in enumerate(annotated_videos(names, count, 3, duration)):
            video_id = f"v_{subset[:5]}{index:06d}"
            annotations[video_id] = {"duration_second": duration, "annotations": video_annotations}
            rows.append(f"{video_id},900,{duration},30.0,30.0,{subset},896")
            for kind in ("tsp_features", "clip_features"):
                (folder / kind).mkdir(parents=True, exist_ok=True)
                features = generator.standard_normal((32, CLIP_EMBEDDING_DIM), dtype=np.float32)
                np.save(folder / kind / f"{video_id}.npy", features)
    (folder / "anet_anno_action.json").write_text(json.dumps(annotations))
    (folder / "anet_video_info.csv").write_text("\n".join(rows) + "\n")


@dataclass(frozen=True)
class Workspace:
    folder: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, quickstart_fast_run):
    folder = tmp_path_factory.mktemp("readme")
    with serve_in_subprocess(idle_timeout=1800) as endpoint:
        env = child_env(endpoint, folder.parent / f"{folder.name}-hf-home")
        publish_tiny_clip(env)
        write_videos(folder)
        write_thumos14(folder / "data" / "thumos14")
        write_activitynet(folder / "data" / "activitynet")
        (folder / "zeetad-quickstart").symlink_to(quickstart_fast_run.output_dir, target_is_directory=True)
        # the commands run from the root of a clone
        (folder / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
        yield Workspace(folder, env)


# ---------------------------------------------------------------------------------------------------------------------
# Fenced snippets and commands, run as written


def written_paths(command: str) -> list[str]:
    """The files and folders a command names as its outputs (not those named by a shell variable)."""
    words = shlex.split(command, comments=True)
    flags = ("--output", "--output_dir", "--plot")
    return [words[index + 1] for index, word in enumerate(words[:-1]) if word in flags and "$" not in words[index + 1]]


def run_documented(snippet: Snippet, command: list[str], workspace: Workspace) -> None:
    completed = subprocess.run(
        command, cwd=workspace.folder, env=workspace.env, capture_output=True, text=True, timeout=900
    )
    assert completed.returncode == 0, f"{snippet}:\n{snippet.text}\n{completed.stderr[-4000:]}"


@pytest.mark.parametrize("snippet", documented("python"), ids=str)
def test_python_snippet_runs_as_written(snippet, workspace):
    script = workspace.folder / f"snippet_{Path(snippet.document).stem}_{snippet.line}.py"
    script.write_text(snippet.text)
    run_documented(snippet, [sys.executable, script.name], workspace)


def distinct_commands() -> list:
    """The fenced commands to run, each text once (the first place that gives it names the test)."""
    first_places = {}
    for command in documented("bash"):
        if not command.text.startswith(CI_COMMANDS):
            first_places.setdefault(" ".join(command.text.split()), command)
    return [pytest.param(command, id=str(command), marks=marks(command)) for command in first_places.values()]


def run_serving_command(snippet: Snippet, workspace: Workspace) -> None:
    """Start a serving command as written, wait for the page it names (on 127.0.0.1) to answer, then stop it."""
    if importlib.util.find_spec("gradio") is None and os.environ.get("ZEETAD_REQUIRE_BROWSER_TESTS") != "1":
        pytest.skip('the demo needs gradio: pip install -c constraints.txt -e ".[demo]"')
    with open(workspace.folder / "serving.log", "w+") as log:
        server = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", snippet.text],
            cwd=workspace.folder,
            env=workspace.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: stopping it stops the shell's children too
        )
        try:
            deadline = time.monotonic() + 300
            while not SERVING_LINE.search(Path(log.name).read_text()):
                assert server.poll() is None, f"{snippet}:\n{snippet.text}\n{Path(log.name).read_text()[-4000:]}"
                assert time.monotonic() < deadline, f"{snippet}: no page after 300 s"
                time.sleep(0.2)
            url = SERVING_LINE.search(Path(log.name).read_text())[1]
            with urllib.request.urlopen(url, timeout=60) as response:
                assert response.status == 200 and b"ZEETAD" in response.read()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)


@pytest.mark.parametrize("command", distinct_commands())
def test_shell_command_runs_as_written(command, workspace):
    if any(re.match(pattern, command.text) for pattern in SERVING_COMMANDS):
        run_serving_command(command, workspace)
        return
    if "examples/train.py" in command.text:
        # The documents' training lines are alternatives for one split; each starts without the others' checkpoints
        # (resuming another launch's checkpoint on another number of processes is refused, as documented).
        for path in written_paths(command.text):
            shutil.rmtree(workspace.folder / path, ignore_errors=True)
    run_documented(command, ["bash", "-euo", "pipefail", "-c", command.text], workspace)
    missing = [path for path in written_paths(command.text) if not (workspace.folder / path).exists()]
    assert not missing, f"{command}: did not write {missing}"
