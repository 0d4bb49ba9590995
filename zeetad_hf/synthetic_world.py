"""A small generated video world for the offline quickstart: real mp4 files, ActivityNet-style annotations and
captioned still images, with compositional action classes ("red ball bouncing") split into seen and unseen classes.

Design (why it looks the way it does):

- Classes are `colour x object x movement` phrases, so an unseen class is a new combination of words that seen
  classes use, the property zero-shot transfer through a text encoder relies on.
- CLIP embeds single frames, so every class must be recognisable from one frame: colour and shape are visible
  directly, and the movement leaves a fading streak along the object's recent path (vertical for "bouncing",
  horizontal for "sliding", an arc for "circling"), like the motion blur of a real camera. Over consecutive frames
  the object really moves along that path.
- Untrimmed videos hold several instances of one or two classes with varied durations, separated by background;
  clutter comes from textured backgrounds, static grey/white/brown objects, sensor noise, brightness flicker, slow
  camera pans, camera shake and scene cuts (a new background and new clutter).
- The seen/unseen split is a seeded random draw of class names, like the real split lists, redrawn (with the next
  seed offset) until every word of the vocabulary appears in at least one seen class.
- The still images for CLIP pretraining never show an unseen class's action nor use its phrase as a caption: they
  are seen-class frames, static colour-object pairs ("a photo of a blue box.") and moving neutral-coloured objects
  ("a photo of a grey ball circling."), plus empty scenes.

Everything is a deterministic function of [`WorldConfig`] (including its seed).
"""

import functools
import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .file_utils import atomic_write, write_json_atomic


# Linear RGB in [0, 1] of the colour words. Saturated and far apart so that compression and noise keep them apart.
COLOUR_VALUES = {
    "red": (0.92, 0.12, 0.10),
    "green": (0.12, 0.78, 0.18),
    "blue": (0.12, 0.28, 0.95),
    "yellow": (0.95, 0.85, 0.08),
    "purple": (0.62, 0.15, 0.85),
    "orange": (0.98, 0.52, 0.05),
}
# Colours of moving "neutral" objects in caption images (movement words without a class colour) and of static
# distractors in the videos. Low saturation keeps them distinct from every colour word.
NEUTRAL_COLOURS = {"grey": (0.55, 0.55, 0.55), "white": (0.92, 0.92, 0.92), "brown": (0.42, 0.30, 0.22)}
OBJECT_NAMES = ("ball", "box", "triangle", "ring")
MOVEMENT_NAMES = ("bouncing", "sliding", "circling")
# Words of the caption and prompt templates, so the offline tokenizer gives each its own token.
TEMPLATE_WORDS = ("a", "an", "photo", "video", "of", "the", "empty", "scene")
CAPTION_TEMPLATES = ("a photo of a {}.", "a video of a {}.")
# The prompt template of ZEETAD models trained on this world (one of the caption templates).
PROMPT_TEMPLATE = "a video of a {}."
EMPTY_SCENE_CAPTION = "a photo of an empty scene."
# Trail of a moving object: a tapering streak of small discs along its recent path (lag of each disc behind the
# object in seconds, and its opacity). Small discs rather than ghost copies of the object keep the object's outline
# crisp (ghosts of a sliding box look like a wider box) and make the path's direction and curvature the movement cue.
TRAIL_LAGS = tuple(round(lag, 4) for lag in np.linspace(0.08, 0.6, 8).tolist())
TRAIL_OPACITY = tuple(round(opacity, 4) for opacity in np.linspace(0.8, 0.3, 8).tolist())
TRAIL_SHAPE = "ball"
# Radius of the trail's discs relative to the object's.
TRAIL_SIZE = 0.35
# Version of the rendering code, part of the cache key of generated worlds: bump it when frames change.
RENDERING_VERSION = 3
# Trajectory sizes in units of the frame size, and periods in seconds.
MOVEMENT_AMPLITUDE = 0.2
MOVEMENT_PERIOD = 1.6


@dataclass(frozen=True)
class WorldConfig:
    r"""
    Settings of a generated world; every output is a deterministic function of them.

    Args:
        colours (`tuple[str, ...]`, *optional*, defaults to `("red", "green", "blue", "yellow")`):
            Colour words (keys of `COLOUR_VALUES`).
        objects (`tuple[str, ...]`, *optional*, defaults to `("ball", "box", "triangle")`):
            Object words (from `OBJECT_NAMES`).
        movements (`tuple[str, ...]`, *optional*, defaults to `("bouncing", "sliding", "circling")`):
            Movement words (from `MOVEMENT_NAMES`).
        videos_per_class (`int`, *optional*, defaults to 6):
            Videos whose main class is each class; a video also holds a second class with probability
            `second_class_probability`.
        validation_videos_per_class (`int`, *optional*, defaults to 2):
            How many of each class's videos go to subset `"validation"` (the others to `"training"`).
        second_class_probability (`float`, *optional*, defaults to 0.25):
            Probability that a video also holds instances of a second, random class.
        duration_range (`tuple[float, float]`, *optional*, defaults to `(30.0, 60.0)`):
            Range of video durations in seconds.
        instances_range (`tuple[int, int]`, *optional*, defaults to `(2, 4)`):
            Range (inclusive) of the number of action instances per video.
        action_duration_range (`tuple[float, float]`, *optional*, defaults to `(3.0, 12.0)`):
            Range of action instance durations in seconds.
        fps (`int`, *optional*, defaults to 8):
            Frame rate of the written videos.
        frame_size (`int`, *optional*, defaults to 64):
            Width and height of the frames in pixels.
        scene_duration_range (`tuple[float, float]`, *optional*, defaults to `(6.0, 20.0)`):
            Range of the time between scene cuts in seconds.
        noise_std (`float`, *optional*, defaults to 0.04):
            Standard deviation of the per-pixel Gaussian sensor noise (pixel values in `[0, 1]`).
        unseen_fraction (`float`, *optional*, defaults to 0.25):
            Fraction of the classes that are unseen (the 75/25 setting), rounded to the nearest count.
        seed (`int`, *optional*, defaults to 0):
            Seed of everything random in the world.
    """

    colours: tuple[str, ...] = ("red", "green", "blue", "yellow")
    objects: tuple[str, ...] = ("ball", "box", "triangle")
    movements: tuple[str, ...] = ("bouncing", "sliding", "circling")
    videos_per_class: int = 6
    validation_videos_per_class: int = 2
    second_class_probability: float = 0.25
    duration_range: tuple[float, float] = (30.0, 60.0)
    instances_range: tuple[int, int] = (2, 4)
    action_duration_range: tuple[float, float] = (3.0, 12.0)
    fps: int = 8
    frame_size: int = 64
    scene_duration_range: tuple[float, float] = (6.0, 20.0)
    noise_std: float = 0.04
    unseen_fraction: float = 0.25
    seed: int = 0

    def __post_init__(self):
        for name, allowed in (("colours", COLOUR_VALUES), ("objects", OBJECT_NAMES), ("movements", MOVEMENT_NAMES)):
            words = getattr(self, name)
            unknown = [word for word in words if word not in allowed]
            if len(words) == 0 or unknown or len(set(words)) != len(words):
                raise ValueError(
                    f"`{name}` must be distinct words from {sorted(allowed)}, got {list(words)} (unknown: {unknown})."
                )
        if self.videos_per_class < 1 or not 0 <= self.validation_videos_per_class <= self.videos_per_class:
            raise ValueError(
                f"`validation_videos_per_class` ({self.validation_videos_per_class}) must be in [0, "
                f"`videos_per_class` ({self.videos_per_class})] and `videos_per_class` at least 1."
            )
        low, high = self.action_duration_range
        if not 0 < low <= high:
            raise ValueError(
                f"`action_duration_range` must satisfy 0 < low <= high, got {self.action_duration_range}."
            )
        if not 1 <= self.instances_range[0] <= self.instances_range[1]:
            raise ValueError(f"`instances_range` must satisfy 1 <= low <= high, got {self.instances_range}.")
        # at least the longest instance with a one-second gap on each side must fit into the shortest video (a video
        # drawing more instances than fit keeps only those that do)
        if self.duration_range[0] < high + 2.0 or self.duration_range[0] > self.duration_range[1]:
            raise ValueError(
                f"`duration_range` {self.duration_range} must be ordered and start at >= {high + 2.0:g} s to hold an "
                f"instance of {high:g} s with a one-second gap on each side."
            )
        if self.fps < 1 or self.frame_size < 16:
            raise ValueError(f"`fps` must be >= 1 and `frame_size` >= 16, got {self.fps} and {self.frame_size}.")
        if not 0.0 < self.unseen_fraction < 1.0:
            raise ValueError(f"`unseen_fraction` must be in (0, 1), got {self.unseen_fraction}.")
        if not 0.0 <= self.second_class_probability <= 1.0:
            raise ValueError(f"`second_class_probability` must be in [0, 1], got {self.second_class_probability}.")

    @property
    def class_names(self) -> list[str]:
        """`list[str]`: every class phrase `"<colour> <object> <movement>"`, colour-major."""
        return [f"{c} {o} {m}" for c in self.colours for o in self.objects for m in self.movements]

    @property
    def vocabulary(self) -> list[str]:
        """`list[str]`: every word of class names, captions and prompts (for an offline tokenizer)."""
        return [*self.colours, *NEUTRAL_COLOURS, *self.objects, *self.movements, *TEMPLATE_WORDS]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings (cache key of generated files)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


def fast_world_config(seed: int = 0) -> WorldConfig:
    """A world small enough for tests and `--fast` runs: 36 classes, 2 videos each, 12-20 s long."""
    return WorldConfig(
        videos_per_class=2,
        validation_videos_per_class=1,
        duration_range=(12.0, 20.0),
        instances_range=(1, 2),
        action_duration_range=(3.0, 6.0),
        seed=seed,
    )


def draw_zero_shot_split(config: WorldConfig) -> tuple[list[str], list[str]]:
    r"""
    Draw the seen/unseen class split of a world: a seeded random subset of `round(unseen_fraction * num_classes)`
    unseen classes, redrawn until every vocabulary word still occurs in some seen class (otherwise an unseen class
    could hold a word no training prompt ever used).

    Returns:
        `tuple[list[str], list[str]]`: seen and unseen class names, each in `config.class_names` order.
    """
    names = config.class_names
    num_unseen = min(len(names) - 1, max(1, round(config.unseen_fraction * len(names))))
    words = set(config.colours) | set(config.objects) | set(config.movements)
    for attempt in range(1000):
        rng = np.random.default_rng([config.seed, 1, attempt])
        unseen = set(rng.choice(len(names), size=num_unseen, replace=False).tolist())
        seen_words = {word for index, name in enumerate(names) if index not in unseen for word in name.split()}
        if seen_words == words:
            return (
                [name for index, name in enumerate(names) if index not in unseen],
                [name for index, name in enumerate(names) if index in unseen],
            )
    raise ValueError(
        f"No split of {len(names)} classes with {num_unseen} unseen keeps every word in a seen class; lower "
        "`unseen_fraction` or add classes."
    )


# ---------------------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------------------


def _triangle_wave(phase: np.ndarray) -> np.ndarray:
    """Period 1, values in [-1, 1]: constant speed between turning points, so the trail is long almost always."""
    return 4.0 * np.abs(np.mod(phase + 0.25, 1.0) - 0.5) - 1.0


def movement_offsets(movement: str, times: np.ndarray, phase: float, amplitude: float) -> np.ndarray:
    r"""
    Position of a moving object relative to the centre of its trajectory.

    Args:
        movement (`str`):
            A word of `MOVEMENT_NAMES`.
        times (`np.ndarray`):
            Times in seconds, any shape.
        phase (`float`):
            Phase of the trajectory in periods.
        amplitude (`float`):
            Half the extent of the trajectory in pixels.

    Returns:
        `np.ndarray` of shape `times.shape + (2,)`: `(dx, dy)` in pixels.
    """
    cycle = times / MOVEMENT_PERIOD + phase
    zeros = np.zeros_like(cycle)
    if movement == "bouncing":
        return np.stack([zeros, amplitude * _triangle_wave(cycle)], axis=-1)
    if movement == "sliding":
        return np.stack([amplitude * _triangle_wave(cycle), zeros], axis=-1)
    if movement == "circling":
        angle = 2 * math.pi * cycle
        return np.stack([amplitude * np.cos(angle), amplitude * np.sin(angle)], axis=-1)
    raise ValueError(f"Unknown movement {movement!r}; expected one of {MOVEMENT_NAMES}.")


def shape_coverage(shape: str, dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of an object of `radius` pixels at pixel offsets `(dx, dy)` from its centre."""
    if shape == "ball":
        distance = np.sqrt(dx**2 + dy**2) - radius
    elif shape == "box":
        distance = np.maximum(np.abs(dx), np.abs(dy)) - 0.85 * radius
    elif shape == "triangle":
        # apex up; the signed distance is approximated by the largest violated half-plane
        distance = np.maximum(dy - 0.8 * radius, 0.894 * np.abs(dx) - 0.447 * dy - 0.5 * radius)
    elif shape == "ring":
        distance = np.abs(np.sqrt(dx**2 + dy**2) - 0.75 * radius) - 0.3 * radius
    else:
        raise ValueError(f"Unknown object {shape!r}; expected one of {OBJECT_NAMES}.")
    return np.clip(0.5 - distance, 0.0, 1.0)


# Every object's coverage is 0 farther than this many radii (plus `_REACH_PIXELS`) from its centre along either axis
# (the triangle reaches furthest: 1.12 radii + 1.12 pixels below its centre).
_REACH_RADII = 1.2
_REACH_PIXELS = 2.0


@functools.lru_cache(maxsize=4)
def _pixel_grid(size: int) -> np.ndarray:
    """Row and column index of every pixel of a `size` x `size` image: `(2, size, size)` float32, read-only."""
    grid = np.mgrid[0:size, 0:size].astype(np.float32)
    grid.flags.writeable = False
    return grid


def _paint(canvas: np.ndarray, shape: str, centre, radius: float, colour, opacity: float) -> None:
    """Alpha-blend one object onto `canvas` (height, width, 3) in place.

    Only the pixels the object can cover are computed: elsewhere its alpha is exactly 0, which would leave the canvas
    unchanged bit for bit, so the result equals blending over the whole canvas.
    """
    reach = _REACH_RADII * radius + _REACH_PIXELS
    top, bottom = max(0, math.floor(centre[1] - reach)), min(canvas.shape[0], math.ceil(centre[1] + reach) + 1)
    left, right = max(0, math.floor(centre[0] - reach)), min(canvas.shape[1], math.ceil(centre[0] + reach) + 1)
    if top >= bottom or left >= right:
        return
    rows, columns = _pixel_grid(max(canvas.shape[:2]))[:, top:bottom, left:right]
    window = canvas[top:bottom, left:right]
    alpha = opacity * shape_coverage(shape, columns - centre[0], rows - centre[1], radius)[..., None]
    window *= 1.0 - alpha
    window += alpha * np.asarray(colour, dtype=np.float32)


@dataclass
class Scene:
    """One camera shot: a textured background larger than the frame (for panning) with static distractors."""

    background: np.ndarray
    pan_start: np.ndarray
    pan_velocity: np.ndarray


def make_scene(rng: np.random.Generator, frame_size: int) -> Scene:
    """A random muted background with texture and 2-4 static neutral-coloured distractor objects (any of `OBJECT_NAMES`).

    The distractors use the object shapes on purpose: the model has to bind the object word to the coloured, moving
    object rather than detect a shape anywhere in the frame.
    """
    margin = frame_size // 4
    size = frame_size + 2 * margin
    grid = _pixel_grid(size) / size
    # two low-saturation base colours mixed along a random direction, plus low-frequency texture
    base = rng.uniform(0.25, 0.6, size=(2, 1)) + rng.uniform(-0.05, 0.05, size=(2, 3))
    direction = rng.normal(size=2)
    mix = np.clip(0.5 + direction[0] * (grid[0] - 0.5) + direction[1] * (grid[1] - 0.5), 0, 1)[..., None]
    canvas = (base[0] * (1 - mix) + base[1] * mix).astype(np.float32)
    for _ in range(3):
        frequency = rng.uniform(2, 6, size=2)
        offset = rng.uniform(0, 2 * math.pi, size=2)
        canvas += (
            rng.uniform(0.02, 0.06)
            * np.sin(2 * math.pi * frequency[0] * grid[0] + offset[0])[..., None]
            * np.cos(2 * math.pi * frequency[1] * grid[1] + offset[1])[..., None]
        )
    neutral = list(NEUTRAL_COLOURS.values())
    for _ in range(rng.integers(2, 5)):
        _paint(
            canvas,
            OBJECT_NAMES[rng.integers(len(OBJECT_NAMES))],
            rng.uniform(0, size, size=2),
            rng.uniform(0.06, 0.14) * frame_size,
            np.asarray(neutral[rng.integers(len(neutral))]) * rng.uniform(0.8, 1.1),
            1.0,
        )
    pan_speed = frame_size * 0.02
    return Scene(
        background=np.clip(canvas, 0, 1),
        pan_start=rng.uniform(0, 2 * margin, size=2),
        pan_velocity=rng.uniform(-pan_speed, pan_speed, size=2),
    )


@dataclass
class ActorSpec:
    """A moving (or static) object: what it is, where its trajectory is centred and how it looks."""

    shape: str
    colour: tuple[float, float, float]
    movement: str | None
    centre: tuple[float, float]
    radius: float
    amplitude: float
    phase: float


def random_actor(rng: np.random.Generator, frame_size: int, shape: str, colour, movement: str | None) -> ActorSpec:
    """An actor with a random size, position, phase and a slightly jittered colour, kept inside the frame."""
    radius = rng.uniform(0.1, 0.14) * frame_size
    amplitude = MOVEMENT_AMPLITUDE * frame_size * rng.uniform(0.85, 1.15) if movement is not None else 0.0
    reach = radius + amplitude
    centre = rng.uniform(reach, frame_size - reach, size=2) if reach < frame_size / 2 else np.full(2, frame_size / 2)
    jittered = np.clip(np.asarray(colour) * rng.uniform(0.85, 1.1) + rng.uniform(-0.04, 0.04, size=3), 0, 1)
    return ActorSpec(
        shape, tuple(jittered.tolist()), movement, tuple(centre.tolist()), radius, amplitude, rng.uniform()
    )


def render_frame(
    scene: Scene,
    time_in_scene: float,
    actor: ActorSpec | None,
    time_in_action: float,
    rng: np.random.Generator,
    frame_size: int,
    noise_std: float,
) -> np.ndarray:
    r"""
    Render one uint8 RGB frame `(frame_size, frame_size, 3)`: the panned, shaken scene, the actor with its motion
    trail, brightness flicker and sensor noise.
    """
    shake = rng.normal(scale=0.6, size=2)
    margin = (scene.background.shape[0] - frame_size) // 2
    offset = np.clip(np.round(scene.pan_start + scene.pan_velocity * time_in_scene + shake), 0, 2 * margin)
    top, left = int(offset[0]), int(offset[1])
    canvas = scene.background[top : top + frame_size, left : left + frame_size].copy()
    if actor is not None:
        if actor.movement is None:
            _paint(canvas, actor.shape, actor.centre, actor.radius, actor.colour, 1.0)
        else:
            lags = np.asarray((*TRAIL_LAGS[::-1], 0.0))
            positions = np.asarray(actor.centre) + movement_offsets(
                actor.movement, time_in_action - lags, actor.phase, actor.amplitude
            )
            # oldest trail mark first so that the object itself ends on top
            for position, opacity in zip(positions[:-1], TRAIL_OPACITY[::-1]):
                _paint(canvas, TRAIL_SHAPE, position, TRAIL_SIZE * actor.radius, actor.colour, opacity)
            _paint(canvas, actor.shape, positions[-1], actor.radius, actor.colour, 1.0)
    canvas *= rng.uniform(0.9, 1.1)
    canvas += rng.normal(scale=noise_std, size=canvas.shape).astype(np.float32)
    return (np.clip(canvas, 0, 1) * 255 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------------
# Videos and annotations
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class VideoPlan:
    """Everything needed to render one video: its duration, subset, action instances and scene cuts."""

    video_id: str
    subset: str
    duration: float
    instances: list[dict[str, Any]] = field(default_factory=list)
    cuts: list[float] = field(default_factory=list)
    seed: tuple[int, ...] = ()


def _place_instances(rng: np.random.Generator, duration: float, lengths: list[float]) -> list[float]:
    """Random non-overlapping start times for instances of `lengths`, each followed and preceded by >= 1 s gap."""
    slack = duration - sum(lengths) - (len(lengths) + 1) * 1.0
    # Dirichlet-like split of the free time into len + 1 gaps, each on top of the one-second minimum
    weights = rng.exponential(size=len(lengths) + 1)
    gaps = 1.0 + slack * weights / weights.sum()
    starts, time = [], 0.0
    for gap, length in zip(gaps, lengths):
        time += gap
        starts.append(time)
        time += length
    return starts


def plan_world(config: WorldConfig) -> list[VideoPlan]:
    r"""
    Plan every video of the world: ids, subsets, durations, action instances (class, start, end, look) and scene
    cuts. Each class is the main class of `videos_per_class` videos, `validation_videos_per_class` of them in the
    validation subset, so every class has training and evaluation videos whichever side of the split it lands on.
    """
    names = config.class_names
    plans = []
    for class_index, name in enumerate(names):
        for repeat in range(config.videos_per_class):
            rng = np.random.default_rng([config.seed, 2, class_index, repeat])
            video_id = f"video_{len(plans):04d}"
            subset = "validation" if repeat < config.validation_videos_per_class else "training"
            # a whole number of frames, so that the annotated duration is the decoded one
            duration = round(float(rng.uniform(*config.duration_range)) * config.fps) / config.fps
            num_instances = int(rng.integers(config.instances_range[0], config.instances_range[1] + 1))
            labels = [name] * num_instances
            if num_instances > 1 and rng.uniform() < config.second_class_probability:
                other = names[(class_index + 1 + rng.integers(len(names) - 1)) % len(names)]
                labels[-1] = other
            lengths = [float(np.round(rng.uniform(*config.action_duration_range), 3)) for _ in labels]
            # drop trailing instances that do not fit with one-second gaps; the first one is always the main class
            while len(lengths) > 1 and sum(lengths) + len(lengths) + 1.0 > duration:
                labels, lengths = labels[:-1], lengths[:-1]
            order = rng.permutation(len(labels))
            labels, lengths = [labels[index] for index in order], [lengths[index] for index in order]
            starts = _place_instances(rng, duration, lengths)
            instances = []
            for label, start, length in zip(labels, starts, lengths):
                colour, shape, movement = label.split()
                actor = random_actor(rng, config.frame_size, shape, COLOUR_VALUES[colour], movement)
                instances.append(
                    {
                        "label": label,
                        "start": round(float(start), 3),
                        "end": round(float(start + length), 3),
                        "actor": actor,
                    }
                )
            cuts, time = [], 0.0
            while True:
                time += rng.uniform(*config.scene_duration_range)
                if time >= duration:
                    break
                cuts.append(float(time))
            plans.append(
                VideoPlan(video_id, subset, duration, instances, cuts, seed=(config.seed, 3, class_index, repeat))
            )
    return plans


def annotations_of(plans: Sequence[VideoPlan], config: WorldConfig) -> dict[str, Any]:
    """The ActivityNet-style annotation JSON of planned videos (`{"database": {video_id: {...}}}`)."""
    return {
        "database": {
            plan.video_id: {
                "subset": plan.subset,
                "duration": plan.duration,
                "fps": float(config.fps),
                "annotations": [
                    {"label": item["label"], "segment": [item["start"], item["end"]]} for item in plan.instances
                ],
            }
            for plan in plans
        }
    }


def iter_video_frames(plan: VideoPlan, config: WorldConfig) -> Iterator[np.ndarray]:
    """Render the frames of a planned video one by one (frame `k` is shown at `k / fps` seconds)."""
    rng = np.random.default_rng(plan.seed)
    scene_starts = [0.0, *plan.cuts]
    scenes = [make_scene(rng, config.frame_size) for _ in scene_starts]
    num_frames = round(plan.duration * config.fps)
    scene_index = 0
    for frame_index in range(num_frames):
        time = frame_index / config.fps
        while scene_index + 1 < len(scenes) and time >= scene_starts[scene_index + 1]:
            scene_index += 1
        active = next((item for item in plan.instances if item["start"] <= time < item["end"]), None)
        yield render_frame(
            scenes[scene_index],
            time - scene_starts[scene_index],
            active["actor"] if active is not None else None,
            time - active["start"] if active is not None else 0.0,
            rng,
            config.frame_size,
            config.noise_std,
        )


def write_mp4(path: str | os.PathLike, frames: Iterator[np.ndarray], fps: int) -> None:
    """Encode RGB frames as H.264 (yuv444p, near-lossless) to `path`, atomically (a temporary file, then a rename)."""
    import av

    with atomic_write(path, "wb") as handle, av.open(handle, mode="w", format="mp4") as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = container.add_stream("libx264", rate=fps)
                stream.width, stream.height = frame.shape[1], frame.shape[0]
                # full chroma resolution: 4:2:0 would smear the thin coloured trails of a 64-pixel frame
                stream.pix_fmt = "yuv444p"
                # A world must be a deterministic function of its seed. Measured with this FFmpeg build: x264's
                # frame-type lookahead encodes the same frames differently from process to process (even on one
                # thread), so it is off; one encoder thread, set through PyAV's `thread_count` as well because its
                # default (0 = automatic) overrides x264's "threads" option.
                stream.options = {"crf": "18", "preset": "veryfast", "threads": "1", "rc-lookahead": "0"}
                stream.codec_context.thread_count = 1
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        if stream is None:
            raise ValueError(f"No frames to write to {path}.")
        container.mux(stream.encode())


def run_in_threads(
    function: Callable[[Any], None],
    items: Sequence[Any],
    num_workers: int,
    progress: Callable[[Iterator], Iterator] | None = None,
) -> None:
    r"""
    Call `function` on every item, `num_workers` calls at a time (threads: for work that runs outside Python's lock,
    such as x264, PyAV decoding or torch). The first error, or Ctrl-C, is raised once the running calls end; the
    items not started yet are dropped.

    Args:
        progress (`Callable`, *optional*):
            Wraps the iterator over the items, e.g. `tqdm.tqdm`; an item counts once its call returned.
    """
    with ThreadPoolExecutor(max_workers=num_workers) as pool:
        results = pool.map(function, items)  # in order; a failed call raises here
        try:
            # the bar counts an item once the next one is asked for, i.e. after its result came
            for _ in zip(progress(items) if progress is not None else items, results):
                pass
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


def generate_world(
    output_dir: str | os.PathLike,
    config: WorldConfig | None = None,
    progress: Callable[[Iterator], Iterator] | None = None,
    num_workers: int = 1,
) -> dict[str, Any]:
    r"""
    Write a world to `output_dir`: `videos/<video_id>.mp4`, `annotations.json` (ActivityNet style) and `split.json`
    (`{"seen": [...], "unseen": [...]}`). Videos already present are kept (files are written atomically, so a present
    file is complete), which makes an interrupted generation resumable. The files are the same for any `num_workers`.

    Args:
        output_dir (`str` or `os.PathLike`):
            Folder to write into (created if needed).
        config ([`WorldConfig`], *optional*):
            World settings; the defaults when omitted.
        progress (`Callable`, *optional*):
            Wraps the iterator over videos, e.g. `tqdm.tqdm` for a progress bar.
        num_workers (`int`, *optional*, defaults to 1):
            Videos written at once, each in a thread: one video's rendering (NumPy, mostly holding the GIL) overlaps
            another's encoding (x264, outside it); measured 1.4-1.6x faster with 2 threads on 2 cores.

    Returns:
        `dict`: `{"annotations": path, "video_dir": path, "seen": [...], "unseen": [...]}`.
    """
    config = config or WorldConfig()
    output_dir = Path(output_dir)
    video_dir = output_dir / "videos"
    video_dir.mkdir(parents=True, exist_ok=True)
    plans = plan_world(config)

    def write_video(plan: VideoPlan) -> None:
        # each video is drawn from its own seed (`plan.seed`): the order of writing does not matter
        path = video_dir / f"{plan.video_id}.mp4"
        if not path.exists():
            write_mp4(path, iter_video_frames(plan, config), config.fps)

    run_in_threads(write_video, plans, num_workers, progress)
    seen, unseen = draw_zero_shot_split(config)
    write_json_atomic(output_dir / "annotations.json", annotations_of(plans, config))
    write_json_atomic(output_dir / "split.json", {"seen": seen, "unseen": unseen})
    return {
        "annotations": str(output_dir / "annotations.json"),
        "video_dir": str(video_dir),
        "seen": seen,
        "unseen": unseen,
    }


# ---------------------------------------------------------------------------------------------------------------------
# Captioned still images (CLIP pretraining)
# ---------------------------------------------------------------------------------------------------------------------


def caption_phrases(config: WorldConfig) -> list[tuple[str, str]]:
    r"""
    The phrases that caption images, with the kind of image each describes.

    Returns:
        `list[tuple[str, str]]`: `(phrase, kind)` with kind `"action"` (a seen class), `"still"` (a static
        `"<colour> <object>"`, any pair), `"neutral"` (`"<neutral colour> <object> <movement>"`) or `"empty"`.
        No phrase is an unseen class name.
    """
    seen, _ = draw_zero_shot_split(config)
    phrases = [(name, "action") for name in seen]
    phrases += [(f"{colour} {shape}", "still") for colour in config.colours for shape in config.objects]
    phrases += [
        (f"{colour} {shape} {movement}", "neutral")
        for colour in NEUTRAL_COLOURS
        for shape in config.objects
        for movement in config.movements
    ]
    return [*phrases, ("empty scene", "empty")]


def render_still(config: WorldConfig, phrase: str, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One uint8 frame showing `phrase` (see [`caption_phrases`]) in a random scene at a random moment."""
    scene = make_scene(rng, config.frame_size)
    actor = None
    if kind in ("action", "neutral"):
        colour, shape, movement = phrase.split()
        palette = COLOUR_VALUES if kind == "action" else NEUTRAL_COLOURS
        actor = random_actor(rng, config.frame_size, shape, palette[colour], movement)
    elif kind == "still":
        colour, shape = phrase.split()
        actor = random_actor(rng, config.frame_size, shape, COLOUR_VALUES[colour], None)
    return render_frame(
        scene,
        rng.uniform(0, 10),
        actor,
        rng.uniform(0, 10),
        rng,
        config.frame_size,
        config.noise_std,
    )


def caption_dataset(
    config: WorldConfig,
    num_images: int,
    seed: int = 0,
    progress: Callable[[Iterator], Iterator] | None = None,
) -> tuple[np.ndarray, list[str], list[str]]:
    r"""
    Captioned still images for CLIP pretraining: half seen-class action frames, the rest spread over static
    colour-object pairs, neutral-coloured moving objects and empty scenes.

    Args:
        config ([`WorldConfig`]):
            The world (vocabulary, look, split).
        num_images (`int`):
            Number of images.
        seed (`int`, *optional*, defaults to 0):
            Seed of the images (combined with the world seed).
        progress (`Callable`, *optional*):
            Wraps the iterator over the images, e.g. `tqdm.tqdm` for a progress bar.

    Returns:
        `tuple`: images `(num_images, frame_size, frame_size, 3)` uint8, captions (a phrase inside a random
        caption template) and phrases (the caption without its template; equal phrases are positives of each other).
    """
    phrases = caption_phrases(config)
    by_kind = {
        kind: [phrase for phrase, k in phrases if k == kind] for kind in ("action", "still", "neutral", "empty")
    }
    kinds = np.array(["action", "still", "neutral", "empty"])
    rng = np.random.default_rng([config.seed, 4, seed])
    images = np.empty((num_images, config.frame_size, config.frame_size, 3), dtype=np.uint8)
    captions, chosen = [], []
    indices = range(num_images)
    for index in progress(indices) if progress is not None else indices:
        kind = str(kinds[rng.choice(4, p=[0.5, 0.2, 0.2, 0.1])])
        phrase = by_kind[kind][rng.integers(len(by_kind[kind]))]
        images[index] = render_still(config, phrase, kind, rng)
        if kind == "empty":
            captions.append(EMPTY_SCENE_CAPTION)
        else:
            captions.append(CAPTION_TEMPLATES[rng.integers(len(CAPTION_TEMPLATES))].format(phrase))
        chosen.append(phrase)
    return images, captions, chosen


def class_frames(
    config: WorldConfig, class_names: Sequence[str], frames_per_class: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    r"""
    Single rendered frames of action classes (seen or unseen) in random scenes, for frame-level zero-shot tests.

    Returns:
        `tuple[np.ndarray, np.ndarray]`: frames `(len(class_names) * frames_per_class, size, size, 3)` uint8 and
        the index into `class_names` of each frame.
    """
    rng = np.random.default_rng([config.seed, 5, seed])
    frames, labels = [], []
    for label, name in enumerate(class_names):
        for _ in range(frames_per_class):
            frames.append(render_still(config, name, "action", rng))
            labels.append(label)
    return np.stack(frames), np.asarray(labels)


__all__ = [
    "PROMPT_TEMPLATE",
    "RENDERING_VERSION",
    "WorldConfig",
    "annotations_of",
    "caption_dataset",
    "caption_phrases",
    "class_frames",
    "draw_zero_shot_split",
    "fast_world_config",
    "generate_world",
    "plan_world",
    "run_in_threads",
]
