import json

import numpy as np
import pytest

from zeetad_hf.synthetic_world import (
    OBJECT_NAMES,
    ActorSpec,
    Scene,
    WorldConfig,
    caption_dataset,
    caption_phrases,
    class_frames,
    draw_zero_shot_split,
    fast_world_config,
    generate_world,
    iter_video_frames,
    plan_world,
    render_frame,
    shape_coverage,
)
from zeetad_hf.synthetic_world import _paint as paint_object
from zeetad_hf.video_utils import VideoFrameSampler


def small_world(seed: int = 0) -> WorldConfig:
    """8 classes, one 8-10 s video each: a few seconds to write."""
    return WorldConfig(
        colours=("red", "blue"),
        objects=("ball", "box"),
        movements=("bouncing", "sliding"),
        videos_per_class=1,
        validation_videos_per_class=0,
        duration_range=(8.0, 10.0),
        instances_range=(1, 2),
        action_duration_range=(2.0, 3.0),
        seed=seed,
    )


def test_world_is_deterministic():
    config = fast_world_config(seed=3)
    first, second = plan_world(config), plan_world(config)
    assert [(plan.video_id, plan.duration, plan.instances) for plan in first] == [
        (plan.video_id, plan.duration, plan.instances) for plan in second
    ]
    frames = [np.stack(list(iter_video_frames(first[0], config))) for _ in range(2)]
    np.testing.assert_array_equal(frames[0], frames[1])
    images_a, captions_a, _ = caption_dataset(config, 16, seed=1)
    images_b, captions_b, _ = caption_dataset(config, 16, seed=1)
    np.testing.assert_array_equal(images_a, images_b)
    assert captions_a == captions_b
    assert draw_zero_shot_split(config) == draw_zero_shot_split(fast_world_config(seed=3))
    # another seed gives another world
    assert plan_world(fast_world_config(seed=4))[0].duration != first[0].duration


@pytest.mark.parametrize("config", [WorldConfig(), fast_world_config()], ids=["default", "fast"])
def test_annotations_inside_video_and_disjoint(config):
    plans = plan_world(config)
    assert len(plans) == len(config.class_names) * config.videos_per_class
    for plan in plans:
        assert config.duration_range[0] - 1 / config.fps <= plan.duration <= config.duration_range[1] + 1 / config.fps
        segments = sorted((item["start"], item["end"]) for item in plan.instances)
        assert len(segments) >= 1
        for start, end in segments:
            assert 0.0 < start < end < plan.duration
        for (_, previous_end), (next_start, _) in zip(segments, segments[1:]):
            assert next_start > previous_end
    # every class has evaluation videos, whichever side of the split it falls on
    validation_labels = {item["label"] for plan in plans if plan.subset == "validation" for item in plan.instances}
    assert validation_labels == set(config.class_names)


def test_split_is_disjoint_and_covers_every_word():
    config = WorldConfig()
    seen, unseen = draw_zero_shot_split(config)
    assert set(seen).isdisjoint(unseen)
    assert set(seen) | set(unseen) == set(config.class_names)
    assert len(unseen) == round(0.25 * len(config.class_names))
    assert {word for name in seen for word in name.split()} == {
        *config.colours,
        *config.objects,
        *config.movements,
    }
    assert draw_zero_shot_split(WorldConfig(seed=1)) != (seen, unseen)


def test_captions_never_name_an_unseen_class():
    config = fast_world_config()
    _, unseen = draw_zero_shot_split(config)
    assert not {phrase for phrase, _ in caption_phrases(config)} & set(unseen)
    _, captions, phrases = caption_dataset(config, 400)
    assert not set(phrases) & set(unseen)
    for caption in captions:
        assert not any(name in caption for name in unseen), caption
    # yet every word of every unseen class is in the captions
    words = {word.strip(".") for caption in captions for word in caption.split()}
    assert {word for name in unseen for word in name.split()} <= words


def test_class_frames_differ_between_classes():
    config = fast_world_config()
    frames, labels = class_frames(config, config.class_names[:3], frames_per_class=2)
    assert frames.shape == (6, config.frame_size, config.frame_size, 3) and frames.dtype == np.uint8
    assert labels.tolist() == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("shape", OBJECT_NAMES)
def test_painting_only_near_the_object_equals_painting_the_whole_canvas(shape):
    # the painter skips pixels farther than its reach; blending over every pixel (written out here) must give the same
    # bits, for objects inside, across the border of and outside the canvas, with non-square canvases and large radii
    rng = np.random.default_rng(0)
    for _ in range(40):
        height, width = rng.integers(16, 96, size=2)
        canvas = rng.uniform(0, 1, size=(height, width, 3)).astype(np.float32)
        centre = rng.uniform(-20, max(height, width) + 20, size=2)
        radius = rng.uniform(1, 30)
        colour, opacity = tuple(rng.uniform(0, 1, size=3)), rng.uniform(0.2, 1.0)
        rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
        alpha = opacity * shape_coverage(shape, columns - centre[0], rows - centre[1], radius)[..., None]
        expected = canvas.copy()  # blended in place, in float32, as the painter does
        expected *= 1.0 - alpha
        expected += alpha * np.asarray(colour, dtype=np.float32)
        painted = canvas.copy()
        paint_object(painted, shape, centre, radius, colour, opacity)
        np.testing.assert_array_equal(painted, expected)


@pytest.mark.parametrize(("movement", "axis"), [("bouncing", 0), ("sliding", 1)])
def test_movement_trail_runs_along_the_path(movement, axis):
    # a red object on a plain grey background with its whole trail on one leg of the path: the streak runs along the
    # movement's axis (rows for "bouncing", columns for "sliding") well beyond the object, and barely across it
    scene = Scene(np.full((96, 96, 3), 0.5, np.float32), np.zeros(2), np.zeros(2))
    actor = ActorSpec("box", (0.9, 0.1, 0.1), movement, (32.0, 32.0), 6.0, 14.0, 0.0)
    frame = render_frame(scene, 0.0, actor, 1.0, np.random.default_rng(0), 64, 0.0).astype(int)
    rows, columns = np.nonzero((frame[..., 0] - frame[..., 1]) > 40)
    along, across = (rows, columns) if axis == 0 else (columns, rows)
    assert np.ptp(along) > 3.5 * actor.radius
    assert np.ptp(across) <= 2 * actor.radius + 2


def test_generated_videos_decode_with_annotated_duration(tmp_path):
    config = small_world()
    result = generate_world(tmp_path, config)
    annotations = json.loads((tmp_path / "annotations.json").read_text())["database"]
    split = json.loads((tmp_path / "split.json").read_text())
    assert split == {"seen": result["seen"], "unseen": result["unseen"]}
    assert len(annotations) == 8
    sampling_fps = 2.0
    for video_id, entry in annotations.items():
        sampler = VideoFrameSampler(tmp_path / "videos" / f"{video_id}.mp4", sampling_fps)
        frames = np.concatenate([chunk for chunk, _ in sampler.iter_chunks()])
        assert frames.shape[1:] == (config.frame_size, config.frame_size, 3)
        assert sampler.duration == pytest.approx(entry["duration"], abs=1e-3)
        assert len(frames) == sampler.num_units == int(np.ceil(entry["duration"] * sampling_fps - 1e-6))
        assert entry["fps"] == config.fps and entry["subset"] == "training"
    # a second call keeps the existing files
    before = {path.name: path.stat().st_mtime_ns for path in (tmp_path / "videos").iterdir()}
    generate_world(tmp_path, config)
    assert before == {path.name: path.stat().st_mtime_ns for path in (tmp_path / "videos").iterdir()}


def test_videos_written_side_by_side_are_those_written_one_after_another(tmp_path):
    config = small_world()
    generate_world(tmp_path / "one", config)
    seen = []
    generate_world(
        tmp_path / "two", config, progress=lambda plans: (seen.append(plan) or plan for plan in plans), num_workers=3
    )
    names = sorted(path.name for path in (tmp_path / "one" / "videos").iterdir())
    assert len(names) == 8 and len(seen) == 8
    for name in names:
        assert (tmp_path / "one" / "videos" / name).read_bytes() == (tmp_path / "two" / "videos" / name).read_bytes()
    for name in ("annotations.json", "split.json"):
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text()


def test_invalid_world_settings():
    with pytest.raises(ValueError, match="colours"):
        WorldConfig(colours=("red", "magenta"))
    with pytest.raises(ValueError, match="duration_range"):
        WorldConfig(duration_range=(5.0, 10.0))
    with pytest.raises(ValueError, match="unseen_fraction"):
        WorldConfig(unseen_fraction=1.0)
