import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from transformers import CLIPModel

from zeetad_hf import ZeetadForTemporalActionDetection
from zeetad_hf.clip_pretraining import (
    FAST_CLIP_PRETRAINING,
    ClipPretrainingConfig,
    augment_images,
    build_small_clip,
    contrastive_loss,
    contrastive_step,
    frame_feature_extractor,
    run_clip_pretraining,
)
from zeetad_hf.synthetic_world import class_frames, fast_world_config


def test_contrastive_loss_treats_repeated_phrases_as_positives():
    images = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]), dim=-1)
    scale = torch.tensor(2.0)
    # with distinct phrases it is CLIP's symmetric InfoNCE
    logits = scale.exp() * images @ images.T
    targets = torch.arange(3)
    expected = 0.5 * (
        torch.nn.functional.cross_entropy(logits, targets) + torch.nn.functional.cross_entropy(logits.T, targets)
    )
    torch.testing.assert_close(contrastive_loss(images, images, scale, torch.tensor([0, 1, 2])), expected)
    # with a shared phrase either caption is an equally right answer for either image: swapping them changes nothing
    swapped = images[[1, 0, 2]]
    shared = torch.tensor([0, 0, 1])
    torch.testing.assert_close(
        contrastive_loss(images, swapped, scale, shared), contrastive_loss(images, images, scale, shared)
    )
    assert contrastive_loss(images, swapped, scale, targets) > expected


def _contrastive_batch():
    """A freshly initialised small CLIP (seeded) and a batch of 12 frames of 3 classes with their captions."""
    world = fast_world_config()
    torch.manual_seed(0)
    model, tokenizer = build_small_clip(world.vocabulary, ClipPretrainingConfig(), world.frame_size)
    frames, labels = class_frames(world, world.class_names[:3], frames_per_class=4)
    captions = [f"a video of {world.class_names[label]}." for label in labels]
    encoded = tokenizer(captions, padding=True, return_tensors="pt")
    pixel_values = frame_feature_extractor(world.frame_size).preprocess_frames(frames)
    return model, pixel_values, encoded, torch.tensor(labels)


def _sharded_gradients(num_shards, pool=None):
    model, pixel_values, encoded, phrase_ids = _contrastive_batch()
    loss = contrastive_step(
        model, pixel_values, encoded["input_ids"], encoded["attention_mask"], phrase_ids, num_shards, pool
    )
    return loss, {name: parameter.grad for name, parameter in model.named_parameters()}


def test_sharded_step_gives_the_whole_batch_gradients_and_the_same_bits_side_by_side():
    # the plain whole-batch step, written out independently of contrastive_step
    model, pixel_values, encoded, phrase_ids = _contrastive_batch()
    image_embeds = torch.nn.functional.normalize(
        model.get_image_features(pixel_values=pixel_values).pooler_output, dim=-1
    )
    text_embeds = torch.nn.functional.normalize(model.get_text_features(**encoded).pooler_output, dim=-1)
    expected_loss = contrastive_loss(image_embeds, text_embeds, model.logit_scale, phrase_ids)
    expected_loss.backward()
    expected = {name: parameter.grad for name, parameter in model.named_parameters()}

    for num_shards in (1, 2, 5):  # 5 shards of 12 pairs: sizes 3, 3, 2, 2, 2
        loss, gradients = _sharded_gradients(num_shards)
        torch.testing.assert_close(loss, expected_loss.detach())
        assert gradients.keys() == expected.keys()
        for name, gradient in gradients.items():
            torch.testing.assert_close(gradient, expected[name], rtol=1e-4, atol=1e-6, msg=name)
    # threads change nothing: every gradient has the same bits as one shard after another
    with ThreadPoolExecutor(3) as pool:
        threaded_loss, threaded = _sharded_gradients(3, pool)
    sequential_loss, sequential = _sharded_gradients(3)
    assert torch.equal(threaded_loss, sequential_loss)
    assert all(torch.equal(threaded[name], sequential[name]) for name in sequential)


@pytest.mark.parametrize("gradient_shards", [0, 65])
def test_pretraining_rejects_gradient_shards_outside_the_batch(tmp_path, gradient_shards):
    config = ClipPretrainingConfig(num_images=64, batch_size=64, num_steps=1, gradient_shards=gradient_shards)
    with pytest.raises(ValueError, match="`gradient_shards` must be between 1 and `batch_size` \\(64\\), got"):
        run_clip_pretraining(tmp_path / "clip", fast_world_config(), config)


def test_augment_images_mirrors_and_shifts_within_the_bound():
    # one bright pixel per image, away from the edges (reflect padding would copy it): where it lands tells the
    # flip and the shift that were applied
    images = torch.zeros(64, 1, 11, 11)
    images[:, 0, 4, 3] = 1.0
    augmented = augment_images(images, max_shift=2, generator=torch.Generator().manual_seed(0))
    assert augmented.shape == images.shape
    assert all(image.sum() == 1.0 and image.max() == 1.0 for image in augmented)  # moved, not copied or smeared
    positions = [divmod(int(image.flatten().argmax()), 11) for image in augmented]
    # rows move by the vertical shift only; columns start at 3 (kept) or 7 (mirrored), then shift by up to 2
    assert {row for row, _ in positions} == {2, 3, 4, 5, 6}
    columns = {column for _, column in positions}
    assert columns <= set(range(1, 10)) and min(columns) < 5 < max(columns)
    assert torch.equal(augment_images(images, 0, torch.Generator()), images)
    # a seeded generator makes it reproducible
    again = augment_images(images, max_shift=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, augmented)


def test_fast_pretraining_learns_and_saves_a_loadable_clip(tmp_path):
    world = fast_world_config()
    summary = run_clip_pretraining(tmp_path / "clip", world, FAST_CLIP_PRETRAINING)
    assert summary["final_loss"] < summary["initial_loss"] - 0.3
    for name in ("seen", "unseen", "unseen_all_classes"):
        assert 0.0 <= summary[f"{name}_accuracy"] <= 1.0
    saved = json.loads((tmp_path / "clip" / "pretraining.json").read_text())
    assert saved["final_loss"] == summary["final_loss"]

    model = ZeetadForTemporalActionDetection.from_clip(
        str(tmp_path / "clip"), load_vision=True, d_model=32, num_attention_heads=4, num_queries=8
    )
    clip = CLIPModel.from_pretrained(tmp_path / "clip")
    frames, _ = class_frames(world, world.class_names[:2], frames_per_class=2)
    pixel_values = frame_feature_extractor(world.frame_size).preprocess_frames(frames)
    with torch.no_grad():
        expected = clip.get_image_features(pixel_values=pixel_values).pooler_output
        torch.testing.assert_close(model.get_clip_features(pixel_values), expected)
