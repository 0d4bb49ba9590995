"""Pretrain a small CLIP on the captioned still images of a generated world (the quickstart's stand-in for CLIP's web
pretraining) and measure its frame-level zero-shot accuracy on seen and unseen classes.

The result is an ordinary CLIP checkpoint folder (`CLIPModel.save_pretrained` + the offline tokenizer), so
`ZeetadForTemporalActionDetection.from_clip(folder, load_vision=True)` loads it like `openai/clip-vit-base-patch16`.
"""

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer, get_cosine_schedule_with_warmup
from transformers.utils import logging

from .feature_extraction_zeetad import ZeetadFeatureExtractor
from .offline_tokenizer import build_clip_tokenizer
from .synthetic_world import PROMPT_TEMPLATE, WorldConfig, caption_dataset, class_frames, draw_zero_shot_split


logger = logging.get_logger(__name__)


@dataclass(frozen=True)
class ClipPretrainingConfig:
    r"""
    Size of the small CLIP and its contrastive pretraining schedule.

    Args:
        text_hidden_size (`int`, *optional*, defaults to 64):
            Width of the text transformer.
        text_layers (`int`, *optional*, defaults to 2):
            Depth of the text transformer.
        vision_hidden_size (`int`, *optional*, defaults to 64):
            Width of the vision transformer.
        vision_layers (`int`, *optional*, defaults to 2):
            Depth of the vision transformer.
        patch_size (`int`, *optional*, defaults to 8):
            Side of the square image patches in pixels.
        projection_dim (`int`, *optional*, defaults to 64):
            Dimension of the shared image-text embedding space (the ZEETAD `clip_features` dimension).
        hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation of both towers' feed-forward blocks (a transformers activation name). CLIP's own `quick_gelu`
            is three memory-bound passes over the activations on CPU, forward and backward; GELU is one.
        max_text_length (`int`, *optional*, defaults to 32):
            Text positions, including the start and end tokens (the tokenizer's `model_max_length`).
        num_images (`int`, *optional*, defaults to 4096):
            Captioned images rendered for pretraining.
        num_steps (`int`, *optional*, defaults to 1500):
            Optimizer steps.
        batch_size (`int`, *optional*, defaults to 128):
            Image-caption pairs per step.
        gradient_shards (`int`, *optional*, defaults to 2):
            Parts of every batch (sizes differ by at most one) whose tower passes, forward and backward, run side by
            side on a thread each (see [`contrastive_step`]). The loss is always over the whole batch and the
            gradients are summed in shard order, so the result is the same on any number of cores; changing this
            setting changes only the rounding.
        learning_rate (`float`, *optional*, defaults to 2e-3):
            Peak AdamW learning rate (linear warm-up over the first 5% of the steps, then cosine decay).
        weight_decay (`float`, *optional*, defaults to 0.05):
            AdamW weight decay.
        max_shift (`int`, *optional*, defaults to 6):
            Augmentation: every image of a batch is mirrored left-right with probability 1/2 and translated by up to
            this many pixels in each direction (reflect padding). Both keep its caption true: every object and path
            of the world is left-right symmetric as a class (a mirrored circling path still circles). 0 turns the
            augmentation off.
        eval_frames_per_class (`int`, *optional*, defaults to 40):
            Rendered frames per class for the zero-shot accuracy.
        seed (`int`, *optional*, defaults to 0):
            Seed of the initialisation, the images and the batch order.
    """

    text_hidden_size: int = 64
    text_layers: int = 2
    vision_hidden_size: int = 64
    vision_layers: int = 2
    patch_size: int = 8
    projection_dim: int = 64
    hidden_act: str = "gelu"
    max_text_length: int = 32
    num_images: int = 4096
    num_steps: int = 1500
    batch_size: int = 128
    gradient_shards: int = 2
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    max_shift: int = 6
    eval_frames_per_class: int = 40
    seed: int = 0


# A few seconds on one core: enough for the loss to fall clearly, used by tests and `--fast` runs.
FAST_CLIP_PRETRAINING = ClipPretrainingConfig(num_images=512, num_steps=40, batch_size=64, eval_frames_per_class=8)


def build_small_clip(
    vocabulary: Sequence[str], config: ClipPretrainingConfig, image_size: int
) -> tuple[CLIPModel, CLIPTokenizer]:
    r"""
    A randomly initialised small [`~transformers.CLIPModel`] with an offline tokenizer over `vocabulary`.

    Args:
        vocabulary (`Sequence[str]`):
            Words that get their own token (other text falls back to byte tokens).
        config ([`ClipPretrainingConfig`]):
            Model sizes.
        image_size (`int`):
            Side of the square input images in pixels.
    """
    tokenizer = build_clip_tokenizer(list(vocabulary), model_max_length=config.max_text_length)
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": config.text_hidden_size,
        "intermediate_size": 4 * config.text_hidden_size,
        "num_hidden_layers": config.text_layers,
        "num_attention_heads": max(1, config.text_hidden_size // 32),
        "max_position_embeddings": config.max_text_length,
        # the pooled text embedding is read at the first end-of-text token, so the ids must be the tokenizer's
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "projection_dim": config.projection_dim,
        "hidden_act": config.hidden_act,
    }
    vision_config = {
        "image_size": image_size,
        "patch_size": config.patch_size,
        "hidden_size": config.vision_hidden_size,
        "intermediate_size": 4 * config.vision_hidden_size,
        "num_hidden_layers": config.vision_layers,
        "num_attention_heads": max(1, config.vision_hidden_size // 32),
        "projection_dim": config.projection_dim,
        "hidden_act": config.hidden_act,
    }
    clip_config = CLIPConfig(
        text_config=text_config, vision_config=vision_config, projection_dim=config.projection_dim
    )
    return CLIPModel(clip_config), tokenizer


def frame_feature_extractor(image_size: int) -> ZeetadFeatureExtractor:
    """The ZEETAD frame preprocessing at the world's resolution, so pretraining sees exactly what ZEETAD will feed."""
    return ZeetadFeatureExtractor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )


def contrastive_loss(
    image_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor, phrase_ids: torch.Tensor
) -> torch.Tensor:
    r"""
    Symmetric InfoNCE (image-to-text and text-to-image) in which pairs with the same phrase are all positives.

    A batch drawn from a small vocabulary repeats phrases; treating the other copies as negatives (plain CLIP) would
    push apart embeddings that should coincide, so the targets spread evenly over every pair with the same phrase.

    Args:
        image_embeds (`torch.Tensor` of shape `(batch_size, dim)`):
            L2-normalised image embeddings.
        text_embeds (`torch.Tensor` of shape `(batch_size, dim)`):
            L2-normalised caption embeddings, row `i` describes image `i`.
        logit_scale (`torch.Tensor`):
            Log of the softmax temperature's inverse (CLIP's `logit_scale`).
        phrase_ids (`torch.Tensor` of shape `(batch_size,)`):
            Phrase index of each pair.
    """
    logits = logit_scale.exp() * image_embeds @ text_embeds.T
    positives = (phrase_ids[:, None] == phrase_ids[None, :]).float()
    targets = positives / positives.sum(dim=1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


@torch.no_grad()
def encode_texts(model: CLIPModel, tokenizer: CLIPTokenizer, texts: Sequence[str]) -> torch.Tensor:
    """L2-normalised CLIP text embeddings `(len(texts), projection_dim)`."""
    encoded = tokenizer(list(texts), padding=True, return_tensors="pt")
    return F.normalize(model.get_text_features(**encoded).pooler_output, dim=-1)


@torch.no_grad()
def encode_frames(
    model: CLIPModel, extractor: ZeetadFeatureExtractor, frames: np.ndarray, batch_size: int = 256
) -> torch.Tensor:
    """L2-normalised CLIP image embeddings `(num_frames, projection_dim)` of uint8 frames `(num_frames, H, W, 3)`."""
    embeddings = []
    for start in range(0, len(frames), batch_size):
        pixel_values = extractor.preprocess_frames(frames[start : start + batch_size])
        embeddings.append(model.get_image_features(pixel_values=pixel_values).pooler_output)
    return F.normalize(torch.cat(embeddings), dim=-1)


def zero_shot_frame_accuracy(
    model: CLIPModel,
    tokenizer: CLIPTokenizer,
    world: WorldConfig,
    frames_per_class: int,
    seed: int = 1,
    prompt_template: str = PROMPT_TEMPLATE,
) -> dict[str, float]:
    r"""
    Frame-level zero-shot classification accuracy of a CLIP on freshly rendered frames of the world's classes.

    Returns:
        `dict[str, float]`: `unseen_accuracy` (unseen frames against the unseen class prompts), `seen_accuracy` (seen
        frames against the seen prompts), `unseen_all_classes_accuracy` (unseen frames against every class, the
        generalised setting) and the chance level of each (`*_chance`).
    """
    model.eval()
    extractor = frame_feature_extractor(world.frame_size)
    seen, unseen = draw_zero_shot_split(world)
    results = {}
    settings = (("seen", seen, seen), ("unseen", unseen, unseen), ("unseen_all_classes", unseen, world.class_names))
    for name, classes, candidates in settings:
        frames, labels = class_frames(world, classes, frames_per_class, seed=seed)
        image_embeds = encode_frames(model, extractor, frames)
        text_embeds = encode_texts(model, tokenizer, [prompt_template.format(label) for label in candidates])
        predicted = [candidates[index] for index in (image_embeds @ text_embeds.T).argmax(dim=1).tolist()]
        results[f"{name}_accuracy"] = float(
            np.mean([prediction == classes[label] for prediction, label in zip(predicted, labels)])
        )
        results[f"{name}_chance"] = 1.0 / len(candidates)
    return results


def augment_images(pixel_values: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    r"""
    Random left-right mirroring and translations of a batch of images (see `ClipPretrainingConfig.max_shift`).

    Args:
        pixel_values (`torch.Tensor` of shape `(batch_size, channels, height, width)`):
            Preprocessed images.
        max_shift (`int`):
            Largest translation in pixels along each axis; 0 returns the images unchanged.
        generator (`torch.Generator`):
            Source of the random flips and shifts.
    """
    if max_shift == 0:
        return pixel_values
    batch_size, _, height, width = pixel_values.shape
    mirrored = torch.rand(batch_size, generator=generator) < 0.5
    pixel_values = torch.where(mirrored[:, None, None, None], pixel_values.flip(-1), pixel_values)
    # batch, channels, height + 2 * max_shift, width + 2 * max_shift
    padded = F.pad(pixel_values, (max_shift,) * 4, mode="reflect")
    offsets = torch.randint(0, 2 * max_shift + 1, (batch_size, 2), generator=generator).tolist()
    return torch.stack(
        [image[:, top : top + height, left : left + width] for image, (top, left) in zip(padded, offsets)]
    )


def _shard_embeddings(
    model: CLIPModel, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised image and caption embeddings `(shard_size, projection_dim)` of one shard, with their graphs."""
    image_embeds = model.get_image_features(pixel_values=pixel_values).pooler_output
    text_embeds = model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output
    return F.normalize(image_embeds, dim=-1), F.normalize(text_embeds, dim=-1)


def contrastive_step(
    model: CLIPModel,
    pixel_values: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    phrase_ids: torch.Tensor,
    num_shards: int,
    pool: ThreadPoolExecutor | None = None,
) -> torch.Tensor:
    r"""
    The [`contrastive_loss`] of one batch and its gradients in every parameter's `.grad` (expected empty, as after
    `optimizer.zero_grad()`), with the towers' passes split into `num_shards` shards of the batch.

    The loss compares every image with every caption, so only the towers can be split: each shard's embeddings are
    computed with their graph, the loss runs on all of them joined, and its gradients with respect to the embeddings
    flow back through each shard's towers separately. A parameter's gradient is the sum of the shards' in shard order:
    with `pool` (threads; torch computes outside Python's lock) the shards run side by side, and the result is the
    same bits as without it, one shard after another.

    Args:
        model ([`~transformers.CLIPModel`]):
            The CLIP being trained.
        pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`):
            Preprocessed images.
        input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
            Token ids of the captions, row `i` describing image `i`.
        attention_mask (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
            Their attention mask.
        phrase_ids (`torch.LongTensor` of shape `(batch_size,)`):
            Phrase index of each pair (pairs with the same phrase are all positives).
        num_shards (`int`):
            Shards of the batch (`torch.tensor_split`: sizes differ by at most one).
        pool (`ThreadPoolExecutor`, *optional*):
            Threads that run the shards side by side; one after another in this thread when omitted.

    Returns:
        `torch.Tensor`: the loss (detached).
    """
    run = map if pool is None else pool.map
    # one index tensor per shard: tensor_split's near-equal parts
    shards = torch.arange(len(pixel_values)).tensor_split(num_shards)
    outputs = list(
        run(lambda rows: _shard_embeddings(model, pixel_values[rows], input_ids[rows], attention_mask[rows]), shards)
    )
    # batch_size, projection_dim: leaves, so that the loss's backward stops here (and reaches `logit_scale`)
    image_embeds = torch.cat([image for image, _ in outputs]).detach().requires_grad_()
    text_embeds = torch.cat([text for _, text in outputs]).detach().requires_grad_()
    loss = contrastive_loss(image_embeds, text_embeds, model.logit_scale, phrase_ids)
    loss.backward()
    tower_parameters = [parameter for parameter in model.parameters() if parameter is not model.logit_scale]

    def shard_gradients(index: int) -> tuple[torch.Tensor | None, ...]:
        rows = shards[index]
        return torch.autograd.grad(
            outputs[index], tower_parameters, (image_embeds.grad[rows], text_embeds.grad[rows]), allow_unused=True
        )

    for parameter, gradients in zip(tower_parameters, zip(*run(shard_gradients, range(num_shards)))):
        present = [gradient for gradient in gradients if gradient is not None]
        # summed in shard order whatever order the threads finished in
        parameter.grad = None if not present else sum(present[1:], present[0])
    return loss.detach()


def _batches(num_items: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless shuffled mini-batches of indices, reshuffled every epoch, no partial batch."""
    while True:
        order = torch.randperm(num_items, generator=generator)
        for start in range(0, num_items - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def pretrain_clip(
    world: WorldConfig,
    config: ClipPretrainingConfig | None = None,
    progress: Callable[..., Iterator] | None = None,
) -> tuple[CLIPModel, CLIPTokenizer, dict[str, Any]]:
    r"""
    Build a small CLIP over the world's vocabulary and train it contrastively on the world's captioned images.

    Args:
        world ([`WorldConfig`]):
            The generated world (vocabulary, look, seen/unseen split).
        config ([`ClipPretrainingConfig`], *optional*):
            Model size and schedule; the defaults when omitted.
        progress (`Callable`, *optional*):
            Called as `progress(iterable, desc=...)` to wrap the iterator over the rendered images (`desc="images"`),
            then the one over the steps (`desc="steps"`), e.g. `tqdm.tqdm` for progress bars.

    Returns:
        `tuple`: the trained [`~transformers.CLIPModel`] (eval mode), its tokenizer and a log `{"losses": [...] (per
        step), "initial_loss", "final_loss" (means over the first / last 10% of the steps), "seconds"}`.
    """
    config = config or ClipPretrainingConfig()
    if config.batch_size > config.num_images:
        raise ValueError(f"`batch_size` ({config.batch_size}) must not exceed `num_images` ({config.num_images}).")
    if not 1 <= config.gradient_shards <= config.batch_size:
        raise ValueError(
            f"`gradient_shards` must be between 1 and `batch_size` ({config.batch_size}), got {config.gradient_shards}."
        )
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    model, tokenizer = build_small_clip(world.vocabulary, config, world.frame_size)
    extractor = frame_feature_extractor(world.frame_size)
    images, captions, phrases = caption_dataset(
        world,
        config.num_images,
        seed=config.seed,
        progress=None if progress is None else (lambda images: progress(images, desc="images")),
    )
    # tokenise each distinct caption once; batches index into the table
    unique_captions = sorted(set(captions))
    caption_index = torch.tensor([unique_captions.index(caption) for caption in captions])
    unique_phrases = sorted(set(phrases))
    phrase_index = torch.tensor([unique_phrases.index(phrase) for phrase in phrases])
    encoded = tokenizer(unique_captions, padding=True, return_tensors="pt")

    decay = [parameter for name, parameter in model.named_parameters() if parameter.ndim >= 2]
    no_decay = [parameter for name, parameter in model.named_parameters() if parameter.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
    )
    scheduler = get_cosine_schedule_with_warmup(optimizer, max(1, config.num_steps // 20), config.num_steps)
    generator = torch.Generator().manual_seed(config.seed)
    batches = _batches(config.num_images, config.batch_size, generator)
    losses = []
    model.train()
    steps = range(config.num_steps)
    # one thread per shard: torch computes outside Python's lock
    with ThreadPoolExecutor(config.gradient_shards) as pool:
        for _ in progress(steps, desc="steps") if progress is not None else steps:
            indices = next(batches)
            pixel_values = augment_images(
                extractor.preprocess_frames(images[indices.numpy()]), config.max_shift, generator
            )
            rows = caption_index[indices]
            loss = contrastive_step(
                model,
                pixel_values,
                encoded["input_ids"][rows],
                encoded["attention_mask"][rows],
                phrase_index[indices],
                config.gradient_shards,
                pool,
            )
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            # CLIP clamps the temperature so that logits stay below 100
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(loss.item())
    model.eval()
    window = max(1, len(losses) // 10)
    log = {
        "losses": losses,
        "initial_loss": float(np.mean(losses[:window])),
        "final_loss": float(np.mean(losses[-window:])),
        "seconds": time.perf_counter() - started,
    }
    return model, tokenizer, log


def save_clip(model: CLIPModel, tokenizer: CLIPTokenizer, output_dir: str | os.PathLike, **metadata) -> None:
    r"""
    Save a CLIP checkpoint folder (weights, config, tokenizer and `pretraining.json` with `metadata`) atomically: it
    is written next to `output_dir` and renamed into place, so an interrupted save never leaves a partial folder.
    """
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}."))
    try:
        model.save_pretrained(temporary)
        tokenizer.save_pretrained(temporary)
        (temporary / "pretraining.json").write_text(json.dumps(metadata, indent=1))
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(temporary, output_dir)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def run_clip_pretraining(
    output_dir: str | os.PathLike,
    world: WorldConfig | None = None,
    config: ClipPretrainingConfig | None = None,
    progress: Callable[..., Iterator] | None = None,
) -> dict[str, Any]:
    r"""
    Pretrain, measure and save a small CLIP for `world` in `output_dir`.

    Returns:
        `dict`: the settings, `initial_loss`, `final_loss`, `seconds` and the zero-shot frame accuracies of
        [`zero_shot_frame_accuracy`] (also saved as `pretraining.json` in the folder).
    """
    world = world or WorldConfig()
    config = config or ClipPretrainingConfig()
    model, tokenizer, log = pretrain_clip(world, config, progress=progress)
    accuracy = zero_shot_frame_accuracy(model, tokenizer, world, config.eval_frames_per_class)
    summary = {
        "world": world.to_dict(),
        "pretraining": asdict(config),
        **{key: value for key, value in log.items() if key != "losses"},
        **accuracy,
    }
    save_clip(model, tokenizer, output_dir, **summary)
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line: `python -m zeetad_hf.clip_pretraining --output_dir DIR [--fast] [--seed N]`."""
    from tqdm.auto import tqdm

    from .synthetic_world import fast_world_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True, help="Folder of the saved CLIP checkpoint.")
    parser.add_argument("--fast", action="store_true", help="A tiny schedule (seconds), for tests.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the world and of the pretraining.")
    args = parser.parse_args(argv)
    world = fast_world_config(args.seed) if args.fast else WorldConfig(seed=args.seed)
    config = FAST_CLIP_PRETRAINING if args.fast else ClipPretrainingConfig()
    config = ClipPretrainingConfig(**{**asdict(config), "seed": args.seed})
    summary = run_clip_pretraining(args.output_dir, world, config, progress=tqdm)
    print(json.dumps({key: value for key, value in summary.items() if key not in ("world", "pretraining")}, indent=1))
    return summary


__all__ = [
    "FAST_CLIP_PRETRAINING",
    "ClipPretrainingConfig",
    "build_small_clip",
    "contrastive_loss",
    "contrastive_step",
    "pretrain_clip",
    "run_clip_pretraining",
    "save_clip",
    "zero_shot_frame_accuracy",
]


if __name__ == "__main__":
    main()
