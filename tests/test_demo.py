"""`zeetad demo`: the Gradio page, driven in a real headless Chromium (selenium) against the quickstart's model, and
what the page is made of (table, preview copies, examples) without a browser."""

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import av
import numpy as np
import pytest
from transformers import pipeline

from zeetad_hf.cli import build_parser, main
from zeetad_hf.demo import (
    DemoDetector,
    browser_playable_video,
    detection_table,
    parse_candidate_labels,
    quickstart_examples,
)
from zeetad_hf.quickstart import held_out_videos


# CI sets it: there the browser test must run, never skip.
REQUIRE_BROWSER = os.environ.get("ZEETAD_REQUIRE_BROWSER_TESTS") == "1"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
THRESHOLD, TOP_K = 0.1, 10


def _browser_missing() -> list[str]:
    """What the browser test lacks, as install hints."""
    missing = []
    for module, extra in (("gradio", "demo"), ("selenium", "dev")):
        if importlib.util.find_spec(module) is None:
            missing.append(f'{module} (pip install -c constraints.txt -e ".[{extra}]")')
    if not any(shutil.which(name) for name in CHROMIUM_NAMES):
        missing.append("a Chromium binary (apt-get install chromium)")
    if shutil.which("chromedriver") is None:
        missing.append("chromedriver (apt-get install chromium-driver)")
    return missing


@pytest.fixture(scope="module")
def browser():
    missing = _browser_missing()
    if missing:
        message = "the browser test needs " + ", ".join(missing)
        if REQUIRE_BROWSER:
            pytest.fail(message + " (ZEETAD_REQUIRE_BROWSER_TESTS=1)")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = next(shutil.which(name) for name in CHROMIUM_NAMES if shutil.which(name))
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1300"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _outside_address() -> str | None:
    """This machine's address on its default route (no packet is sent), or None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.fixture(scope="module")
def demo_server(quickstart_fast_run, browser, tmp_path_factory):
    """`zeetad demo` on the quickstart's model, on a free port, as a user starts it; yields (url, model folder)."""
    model = quickstart_fast_run.output_dir / "runs" / "bottleneck"
    port = _free_port()
    log = tmp_path_factory.mktemp("demo") / "stdout.txt"
    with open(log, "w") as stdout:
        server = subprocess.Popen(
            [Path(sys.executable).with_name("zeetad"), "demo", "--model", model, "--port", str(port)],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while "Serving the demo on" not in log.read_text():
            assert server.poll() is None, server.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "zeetad demo did not start within 180 s"
            time.sleep(0.2)
        assert f"Serving the demo on {url} " in log.read_text()
        yield url, model, port
    finally:
        server.terminate()
        server.wait(timeout=30)


def _page_state(driver) -> str:
    """What the page shows, for a wait that timed out: the status line, the upload box and the table's cells."""
    from selenium.webdriver.common.by import By

    parts = []
    for element_id in ("zeetad-status", "zeetad-upload", "zeetad-table"):
        found = driver.find_elements(By.ID, element_id)
        parts.append(f"#{element_id}: {found[0].get_attribute('textContent').strip()[:600]!r}" if found else "absent")
    return "; ".join(parts)


def _wait(driver, condition, seconds=120):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.2).until(condition)
    except TimeoutException:
        raise AssertionError(f"waited {seconds} s in vain; the page shows {_page_state(driver)}") from None


def _submit(driver, url, video, labels_text):
    """Open the page, upload `video`, type the labels and press Detect; returns the status text once it changed."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    upload = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#zeetad-upload input[type=file]"))[0]
    upload.send_keys(str(video))
    # the upload is in the page once its name is shown
    _wait(driver, lambda d: Path(video).stem in d.find_element(By.ID, "zeetad-upload").text)
    driver.find_element(By.CSS_SELECTOR, "#zeetad-labels textarea, #zeetad-labels input").send_keys(labels_text)
    driver.find_element(By.ID, "zeetad-detect").click()
    status = lambda d: d.find_element(By.ID, "zeetad-status").text.strip()  # noqa: E731
    return _wait(driver, lambda d: status(d) if "detection" in status(d) or "Error" in status(d) else None)


def _save_screenshot(driver, path):
    # the whole page: the window's height is the page's plus the browser's own frame
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, height + 200)
    driver.save_screenshot(str(path))
    print(f"demo screenshot: {path}")


def _artifacts_dir(tmp_path) -> Path:
    folder = Path(os.environ.get("ZEETAD_TEST_ARTIFACTS_DIR", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_the_page_shows_what_the_pipeline_returns_for_a_quickstart_video(demo_server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, model, port = demo_server
    world = model.parent.parent / "world"
    unseen = json.loads((world / "split.json").read_text())["unseen"]
    video = held_out_videos(world, unseen)[0].path
    status = _submit(browser, url, video, ", ".join(unseen))

    # the same call in this process (one thread, as the server runs)
    expected = pipeline("zero-shot-temporal-action-detection", model=str(model))(
        str(video), candidate_labels=unseen, threshold=THRESHOLD, top_k=TOP_K
    )
    assert expected, "the quickstart model should detect something on its first held-out video"
    assert status == f"{len(expected)} detections of {len(unseen)} candidate labels.", (status, expected)

    # the table: every detection once, sorted by start time, seconds to 0.01 and scores to 0.001
    def table_cells(driver):
        # Gradio's table is a grid of divs, cells named by data-row/data-col; textContent also reads rows scrolled out
        # of its viewport
        cells = {}
        for cell in driver.find_elements(By.CSS_SELECTOR, "#zeetad-table [role=gridcell][data-row]"):
            row, column = int(cell.get_attribute("data-row")), int(cell.get_attribute("data-col"))
            cells[row, column] = cell.get_attribute("textContent").strip()
        rows = [[cells.get((row, column), "") for column in range(4)] for row in range(len(expected))]
        complete = len(cells) == 4 * len(expected) and all(all(row) for row in rows)
        return rows if complete else None

    shown = [
        [label, float(start), float(end), float(score)] for label, start, end, score in _wait(browser, table_cells)
    ]
    wanted = sorted(
        ([d["label"], round(d["segment"]["start"], 2), round(d["segment"]["end"], 2), round(d["score"], 3)])
        for d in expected
    )
    assert sorted(shown) == wanted, (shown, wanted)
    assert [row[1] for row in shown] == sorted(row[1] for row in shown)

    # the timeline picture is loaded and the video is on the page
    timeline = browser.find_element(By.CSS_SELECTOR, "#zeetad-timeline img")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", timeline) > 300
    assert browser.find_elements(By.CSS_SELECTOR, "#zeetad-video video")

    # the JSON download is the pipeline's output itself, to the last digit
    link = browser.find_element(By.CSS_SELECTOR, "#zeetad-json a").get_attribute("href")
    with urllib.request.urlopen(link, timeout=30) as response:
        download = json.loads(response.read())
    assert download["detections"] == expected
    assert download["candidate_labels"] == unseen and download["video"] == video.name

    _save_screenshot(browser, _artifacts_dir(tmp_path) / "demo.png")

    # served on the loopback interface only
    outside = _outside_address()
    if outside is not None:
        with pytest.raises(OSError):
            socket.create_connection((outside, port), timeout=5).close()


def test_a_file_that_is_not_a_video_gets_the_pipelines_message_in_the_page(demo_server, browser, tmp_path):
    url, model, _ = demo_server
    notes = tmp_path / "notes.mp4"
    notes.write_text("meeting notes, not a video\n")
    status = _submit(browser, url, notes, "red ball bouncing")

    with pytest.raises(ValueError) as raised:
        pipeline("zero-shot-temporal-action-detection", model=str(model))(str(notes), candidate_labels=["a"])
    message = str(raised.value).replace(str(notes), notes.name)
    assert status == f"Error: {message}"
    assert "Traceback" not in status
    _save_screenshot(browser, _artifacts_dir(tmp_path) / "demo_error.png")


def test_an_example_fills_the_upload_and_the_labels(demo_server, browser):
    from selenium.webdriver.common.by import By

    url, model, _ = demo_server
    world = model.parent.parent / "world"
    unseen = json.loads((world / "split.json").read_text())["unseen"]
    held_out = held_out_videos(world, unseen)[0]
    browser.get(url)
    # the examples table names each video by its file name
    name_cell = f"//*[normalize-space(text())='{held_out.path.name}']"
    _wait(browser, lambda d: d.find_elements(By.XPATH, name_cell))[0].click()
    labels = browser.find_element(By.CSS_SELECTOR, "#zeetad-labels textarea, #zeetad-labels input")
    _wait(browser, lambda d: labels.get_attribute("value") == ", ".join(unseen))
    _wait(browser, lambda d: held_out.path.stem in d.find_element(By.ID, "zeetad-upload").text)
    # the world's 4:4:4 video is shown through a playable copy
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#zeetad-video video"))


# --- what the page is made of, without a browser ---


def test_the_table_is_sorted_by_start_and_rounded_for_display():
    detections = [
        {"score": 0.91234, "label": "b", "segment": {"start": 5.004, "end": 9.0}},
        {"score": 0.5, "label": "a", "segment": {"start": 1.2349, "end": 2.0}},
        {"score": 0.7, "label": "a", "segment": {"start": 5.004, "end": 7.5}},
    ]
    assert detection_table(detections) == [
        ["a", 1.23, 2.0, 0.5],
        ["a", 5.0, 7.5, 0.7],
        ["b", 5.0, 9.0, 0.912],
    ]


@pytest.mark.parametrize("text", ["", "   ", "a, , b", "a, A"])
def test_bad_label_text_is_refused_with_a_message(text):
    with pytest.raises(ValueError):
        parse_candidate_labels(text)


def _write_video(path, pix_fmt: str, size=(64, 48), fps=5, frames=10) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = *size, pix_fmt
        for index in range(frames):
            image = np.full((size[1], size[0], 3), index * 20, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return Path(path)


def _frame_times(path) -> list[float]:
    with av.open(str(path)) as container:
        return [frame.time for frame in container.decode(video=0)]


def test_browsers_get_a_4_2_0_copy_with_the_same_frame_times_only_when_they_need_one(tmp_path):
    playable = _write_video(tmp_path / "playable.mp4", "yuv420p")
    assert browser_playable_video(str(playable), tmp_path) == str(playable)

    source = _write_video(tmp_path / "full_chroma.mp4", "yuv444p")
    copy = browser_playable_video(str(source), tmp_path / "previews")
    assert copy != str(source)
    with av.open(copy) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        # 48 pixels high is scaled up to 256, keeping the aspect ratio (64:48) on even sizes
        assert (stream.codec_context.width, stream.codec_context.height) == (340, 256)
    assert _frame_times(copy) == _frame_times(source) == [index / 5 for index in range(10)]

    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video")
    with pytest.raises(ValueError, match="notes.mp4: not a video that FFmpeg can decode"):
        browser_playable_video(str(notes), tmp_path)


def test_the_demo_detector_returns_the_pipelines_detections_and_knows_the_examples(quickstart_fast_run):
    model = str(quickstart_fast_run.output_dir / "runs" / "bottleneck")
    examples = quickstart_examples(model)
    world = quickstart_fast_run.output_dir / "world"
    unseen = json.loads((world / "split.json").read_text())["unseen"]
    held_out = held_out_videos(world, unseen)
    assert [example.video for example in examples] == [str(video.path) for video in held_out[:4]]
    assert all(example.candidate_labels == unseen for example in examples)
    assert examples[0].ground_truth == held_out[0].ground_truth

    detector = DemoDetector(model, examples)
    reports = []
    result = detector.detect(examples[0].video, ", ".join(unseen), progress=lambda *report: reports.append(report))
    expected = detector.pipeline(examples[0].video, candidate_labels=unseen, threshold=THRESHOLD, top_k=TOP_K)
    assert result.detections == expected
    assert result.table == detection_table(expected)
    # progress counts frames up to the total that the declared duration gives
    assert (
        reports
        and reports[-1][0] == reports[-1][1]
        and [done for done, _ in reports] == sorted(done for done, _ in reports)
    )
    assert json.loads(Path(result.json_path).read_text())["detections"] == expected
    assert quickstart_examples(str(quickstart_fast_run.output_dir / "clip")) == []


def test_without_gradio_the_demo_names_the_install_command_and_nothing_else_needs_it(tmp_path):
    # gradio made unimportable in a child process, as in an install without the demo extra
    script = (
        "import importlib.abc, sys\n"
        "class NoGradio(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'gradio' or name.startswith('gradio.'):\n"
        "            raise ModuleNotFoundError(\"No module named 'gradio'\", name='gradio')\n"
        "sys.meta_path.insert(0, NoGradio())\n"
        "import zeetad_hf, zeetad_hf.cli, zeetad_hf.demo\n"
        "assert 'gradio' not in sys.modules\n"
        "sys.exit(zeetad_hf.cli.main(['demo', '--model', 'anything']))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert completed.returncode == 1, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert lines == [
        'zeetad demo: error: the demo needs gradio, which is not installed: run `pip install -e ".[demo]"` in the '
        'zeetad_hf clone (or `pip install "zeetad_hf[demo]"`)'
    ]


def test_without_a_model_and_a_quickstart_run_the_demo_says_how_to_make_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no zeetad-quickstart/ here
    assert main(["demo"]) == 2
    error = capsys.readouterr().err
    assert "run `zeetad quickstart` first" in error and "--model" in error


@pytest.mark.parametrize(
    ("arguments", "share", "host"),
    [
        ([], False, "127.0.0.1"),
        (["--share"], True, "127.0.0.1"),
        (["--share", "false", "--host", "0.0.0.0"], False, "0.0.0.0"),
    ],
)
def test_the_demo_serves_on_this_machine_only_and_shares_nothing_unless_told(arguments, share, host):
    args = build_parser().parse_args(["demo", *arguments])
    assert (args.share, args.host) == (share, host)
