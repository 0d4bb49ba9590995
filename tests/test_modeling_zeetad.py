"""ZEETAD model: shapes, gradients, adapters, serialization, invariances and input validation on tiny configs."""

import math

import pytest
import torch
import torch.nn.functional as F
from tiny_models import save_tiny_clip
from transformers import AutoModel

from zeetad_hf import ZeetadForTemporalActionDetection
from zeetad_hf.modeling_zeetad import ZERO_INIT_ATTRIBUTE, ZeetadTemporalDeformableAttention


PROMPTS = ["a video of a person jumping", "a video of a person running", "a person diving", "swimming"]


class ZeetadModelTester:
    """Builds tiny inputs for a config: two videos, the second one padded."""

    def __init__(self, config, tokenizer, batch_size=2, num_units=20, padded_length=15):
        self.config = config
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.num_units = num_units
        self.padded_length = padded_length

    def prepare_inputs(self, prompts=PROMPTS):
        feature_dim = self.config.localization_feature_dim or self.config.clip_embedding_dim
        inputs = {
            "input_features": torch.randn(self.batch_size, self.num_units, feature_dim),
            "feature_attention_mask": torch.ones(self.batch_size, self.num_units, dtype=torch.long),
        }
        inputs["feature_attention_mask"][-1, self.padded_length :] = 0
        if self.config.localization_feature_dim is not None:
            inputs["clip_features"] = torch.randn(self.batch_size, self.num_units, self.config.clip_embedding_dim)
        inputs.update(self.tokenizer(prompts, padding=True, return_tensors="pt"))
        return inputs

    def prepare_labels(self):
        return [
            {"class_labels": torch.tensor([0, 1]), "segments": torch.tensor([[0.3, 0.2], [0.7, 0.1]])},
            {"class_labels": torch.tensor([3]), "segments": torch.tensor([[0.5, 0.4]])},
        ][: self.batch_size]


def build(make_config, tokenizer, **overrides):
    config = make_config(**overrides)
    model = ZeetadForTemporalActionDetection(config).eval()
    return model, ZeetadModelTester(config, tokenizer)


@pytest.mark.parametrize("adapter", ["bottleneck", "lora", None])
def test_output_shapes(make_config, tokenizer, adapter):
    model, tester = build(make_config, tokenizer, text_adapter_type=adapter)
    inputs = tester.prepare_inputs()
    with torch.no_grad():
        outputs = model(**inputs)
        as_tuple = model(**inputs, return_dict=False)
    config = model.config
    assert outputs.logits.shape == (2, config.num_queries, len(PROMPTS))
    assert outputs.actionness_logits.shape == (2, config.num_queries)
    assert outputs.pred_segments.shape == (2, config.num_queries, 2)
    assert ((outputs.pred_segments > 0) & (outputs.pred_segments < 1)).all()
    assert outputs.foreground_logits.shape == (2, tester.num_units)
    assert outputs.feature_lengths.tolist() == [tester.num_units, tester.padded_length]
    assert outputs.text_embeds.shape == (len(PROMPTS), config.clip_embedding_dim)
    assert torch.allclose(outputs.text_embeds.norm(dim=-1), torch.ones(len(PROMPTS)))
    assert outputs.last_hidden_state.shape == (2, config.num_queries, config.d_model)
    assert len(outputs.auxiliary_outputs) == config.decoder_layers - 1
    assert outputs.loss is None
    assert torch.equal(as_tuple[0], outputs.logits)


def test_variable_number_of_candidate_labels(make_config, tokenizer):
    model, tester = build(make_config, tokenizer)
    inputs = tester.prepare_inputs()
    with torch.no_grad():
        for count in (1, 2, 4):
            inputs.update(tokenizer(PROMPTS[:count], padding=True, return_tensors="pt"))
            assert model(**inputs).logits.shape[-1] == count
        # The same class keeps the same logits whatever else is in the list.
        inputs.update(tokenizer(PROMPTS[:1], padding=True, return_tensors="pt"))
        single = model(**inputs).logits[..., 0]
        inputs.update(tokenizer(PROMPTS, padding=True, return_tensors="pt"))
        full = model(**inputs).logits[..., 0]
    torch.testing.assert_close(single, full, rtol=1e-5, atol=1e-5)


def test_prompt_templates_are_averaged(make_config, tokenizer):
    model, tester = build(make_config, tokenizer)
    templates = ["a video of a person {}", "the person {}"]
    labels = ["jumping", "running"]
    prompts = [template.format(label) for label in labels for template in templates]
    encoded = tokenizer(prompts, padding=True, return_tensors="pt")
    # num_classes, num_templates, sequence_length
    ids = encoded["input_ids"].view(len(labels), len(templates), -1)
    mask = encoded["attention_mask"].view(len(labels), len(templates), -1)
    with torch.no_grad():
        ensembled = model.get_text_features(ids, mask).pooler_output
        per_prompt = model.get_text_features(encoded["input_ids"], encoded["attention_mask"]).pooler_output
    expected = F.normalize(per_prompt.view(len(labels), len(templates), -1).mean(1), dim=-1)
    torch.testing.assert_close(ensembled, expected)


@pytest.mark.parametrize("adapter", ["bottleneck", "lora"])
def test_loss_and_gradients_reach_adapters_and_heads_only(make_config, tokenizer, adapter):
    model, tester = build(make_config, tokenizer, text_adapter_type=adapter)
    model.train()
    outputs = model(**tester.prepare_inputs(), labels=tester.prepare_labels())
    assert torch.isfinite(outputs.loss)
    assert {"loss_actionness", "loss_class", "loss_l1", "loss_giou", "loss_foreground"} <= set(outputs.loss_dict)
    outputs.loss.backward()
    adapter_marker = ".adapter." if adapter == "bottleneck" else ".lora_"
    for name, parameter in model.named_parameters():
        if name.startswith("text_encoder."):
            is_adapter = adapter_marker in name
            assert parameter.requires_grad == is_adapter, name
            if not is_adapter:
                assert parameter.grad is None, name
        elif name.startswith("text_projection."):
            assert not parameter.requires_grad and parameter.grad is None
        else:
            assert parameter.grad is not None, f"no gradient for {name}"
    # At zero-initialised adapters only the down-projections (LoRA: B) receive a signal first; they must get one.
    text_grads = [p.grad.abs().sum() for n, p in model.text_encoder.named_parameters() if p.grad is not None]
    assert sum(text_grads) > 0
    for name in ("model.segment_heads.1.layers.2.weight", "model.actionness_heads.1.weight", "logit_scale"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name


@pytest.mark.parametrize("adapter", ["bottleneck", "lora", None])
def test_from_clip_loads_weights_and_adapters_start_as_identity(make_config, tokenizer, tmp_path, adapter):
    clip, clip_dir = save_tiny_clip(tmp_path / "clip", tokenizer)
    model = ZeetadForTemporalActionDetection.from_clip(
        str(clip_dir),
        load_vision=True,
        localization_feature_dim=24,
        d_model=32,
        num_attention_heads=4,
        text_adapter_type=adapter,
        text_adapter_bottleneck_dim=8,
        lora_rank=4,
    ).eval()
    encoded = tokenizer(PROMPTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = F.normalize(clip.get_text_features(**encoded).pooler_output, dim=-1)
        got = model.get_text_features(encoded["input_ids"], encoded["attention_mask"]).pooler_output
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        pixels = torch.randn(3, 3, 32, 32)
        torch.testing.assert_close(
            model.get_clip_features(pixels), clip.get_image_features(pixel_values=pixels).pooler_output
        )
    assert model.config.text_config.hidden_size == 32 and model.config.vision_config.image_size == 32
    assert all(not p.requires_grad for p in model.vision_encoder.parameters())


def test_from_clip_without_vision_has_no_tower(tokenizer, tmp_path):
    _, clip_dir = save_tiny_clip(tmp_path / "clip", tokenizer)
    model = ZeetadForTemporalActionDetection.from_clip(str(clip_dir), d_model=32, num_attention_heads=4)
    assert model.vision_encoder is None and model.config.vision_config is None
    with pytest.raises(ValueError, match="no CLIP vision tower"):
        model.get_clip_features(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="text_config"):
        ZeetadForTemporalActionDetection.from_clip(str(clip_dir), text_config={})


@pytest.mark.parametrize("adapter", ["bottleneck", "lora"])
def test_fresh_and_meta_initialisation_keep_adapters_at_zero(make_config, adapter):
    config = make_config(text_adapter_type=adapter)
    fresh = ZeetadForTemporalActionDetection(config)
    from_meta = ZeetadForTemporalActionDetection.from_pretrained(None, config=config, state_dict={})
    for model in (fresh, from_meta):
        tagged = [m for m in model.modules() if getattr(m, ZERO_INIT_ATTRIBUTE, False)]
        # text adapters (one per CLIP layer) + the semantic adapter + one refinement head per decoder layer
        assert len(tagged) >= config.text_config.num_hidden_layers + 1 + config.decoder_layers
        for module in tagged:
            assert module.weight.abs().max() == 0
        for module in model.modules():
            if isinstance(module, ZeetadTemporalDeformableAttention):
                assert module.sampling_offsets_weight.abs().max() == 0
                torch.testing.assert_close(module.sampling_offsets_bias.data, module.initial_sampling_offsets())
        assert model.logit_scale.item() == pytest.approx(config.logit_scale_init_value)
        assert model.logit_bias.item() == pytest.approx(config.logit_bias_init_value)
        for layer in model.query_scale_shift:
            assert layer.weight.abs().max() == 0 and layer.bias.abs().max() == 0


@pytest.mark.parametrize("adapter", ["bottleneck", "lora"])
def test_save_and_auto_model_round_trip(make_config, tokenizer, tmp_path, adapter):
    model, tester = build(make_config, tokenizer, text_adapter_type=adapter)
    # Make adapters non-trivial so that losing them on reload would show.
    with torch.no_grad():
        for parameter in model.text_encoder.adapter_parameters():
            parameter.normal_(0, 0.1)
    inputs = tester.prepare_inputs()
    with torch.no_grad():
        expected = model(**inputs)
    model.save_pretrained(tmp_path / "zeetad")
    assert (tmp_path / "zeetad" / "model.safetensors").exists()
    assert not (tmp_path / "zeetad" / "adapter_config.json").exists()
    for loader in (ZeetadForTemporalActionDetection, AutoModel):
        reloaded = loader.from_pretrained(tmp_path / "zeetad").eval()
        assert isinstance(reloaded, ZeetadForTemporalActionDetection)
        original_state, reloaded_state = model.state_dict(), reloaded.state_dict()
        assert original_state.keys() == reloaded_state.keys()
        for key, tensor in original_state.items():
            assert torch.equal(tensor, reloaded_state[key]), key
        with torch.no_grad():
            got = reloaded(**inputs)
        # Identical weights; outputs may differ in the last bits only because reloaded tensors are views into the
        # memory-mapped file at other alignments, which changes CPU summation order.
        for field in ("logits", "actionness_logits", "pred_segments", "foreground_logits", "text_embeds"):
            torch.testing.assert_close(getattr(got, field), getattr(expected, field), rtol=1e-5, atol=1e-5)


def test_lora_merge_for_export(make_config, tokenizer, tmp_path):
    model, tester = build(make_config, tokenizer, text_adapter_type="lora")
    with torch.no_grad():
        for parameter in model.text_encoder.adapter_parameters():
            parameter.normal_(0, 0.1)
    inputs = tester.prepare_inputs()
    with torch.no_grad():
        expected = model(**inputs).logits
    model.merge_text_adapters()
    assert model.config.text_adapter_type is None
    assert not any("lora" in name for name, _ in model.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, expected, rtol=1e-5, atol=1e-5)
    model.save_pretrained(tmp_path / "merged")
    reloaded = AutoModel.from_pretrained(tmp_path / "merged").eval()
    assert reloaded.config.text_adapter_type is None
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, expected, rtol=1e-5, atol=1e-5)


def test_bottleneck_merge_is_refused(make_config):
    model = ZeetadForTemporalActionDetection(make_config(text_adapter_type="bottleneck"))
    with pytest.raises(ValueError, match="cannot be merged"):
        model.merge_text_adapters()


def test_padding_invariance(make_config, tokenizer):
    model, tester = build(make_config, tokenizer)
    inputs = tester.prepare_inputs()
    extra = 7
    padded = dict(inputs)
    padded["input_features"] = F.pad(inputs["input_features"], (0, 0, 0, extra), value=3.0)
    padded["clip_features"] = F.pad(inputs["clip_features"], (0, 0, 0, extra), value=-2.0)
    padded["feature_attention_mask"] = F.pad(inputs["feature_attention_mask"], (0, extra))
    with torch.no_grad():
        reference = model(**inputs)
        got = model(**padded)
    for field in ("logits", "actionness_logits", "pred_segments"):
        torch.testing.assert_close(getattr(got, field), getattr(reference, field), rtol=1e-4, atol=1e-5)
    valid = inputs["feature_attention_mask"].bool()
    torch.testing.assert_close(got.foreground_logits[:, : tester.num_units][valid], reference.foreground_logits[valid])


def test_batch_matches_single_videos(make_config, tokenizer):
    model, tester = build(make_config, tokenizer)
    inputs = tester.prepare_inputs()
    with torch.no_grad():
        batched = model(**inputs)
        for index, length in enumerate((tester.num_units, tester.padded_length)):
            single = model(
                input_features=inputs["input_features"][index : index + 1, :length],
                clip_features=inputs["clip_features"][index : index + 1, :length],
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
            )
            torch.testing.assert_close(single.logits[0], batched.logits[index], rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(single.pred_segments[0], batched.pred_segments[index], rtol=1e-4, atol=1e-5)


def test_clip_only_mode_uses_one_tensor(make_config, tokenizer):
    model, tester = build(make_config, tokenizer, localization_feature_dim=None)
    inputs = tester.prepare_inputs()
    assert "clip_features" not in inputs and inputs["input_features"].shape[-1] == model.config.clip_embedding_dim
    with torch.no_grad():
        outputs = model(**inputs)
        text_embeds = model.get_text_features(inputs["input_ids"], inputs["attention_mask"]).pooler_output
        same = model(
            input_features=inputs["input_features"],
            feature_attention_mask=inputs["feature_attention_mask"],
            text_embeds=text_embeds,
        )
    torch.testing.assert_close(same.logits, outputs.logits)


def test_eval_is_deterministic_and_gradient_checkpointing_matches(make_config, tokenizer):
    model, tester = build(make_config, tokenizer)
    inputs, labels = tester.prepare_inputs(), tester.prepare_labels()
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, model(**inputs).logits, rtol=0, atol=0)
    model.train()
    plain = model(**inputs, labels=labels).loss
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    checkpointed = model(**inputs, labels=labels)
    checkpointed.loss.backward()
    torch.testing.assert_close(checkpointed.loss, plain)
    assert model.model.segment_heads[0].layers[0].weight.grad is not None


def test_deformable_attention_matches_explicit_linear_interpolation():
    torch.manual_seed(1)
    attention = ZeetadTemporalDeformableAttention(d_model=8, num_heads=2, num_levels=2, num_points=3)
    for parameter in attention.parameters():
        torch.nn.init.normal_(parameter, std=0.5)
    level_lengths, feature_lengths = [6, 3], torch.tensor([6])
    values = torch.randn(1, 9, 8)
    queries = torch.randn(1, 4, 8)
    references = torch.rand(1, 4)
    got, got_weights = attention(
        queries, references, values, torch.ones(1, 9, dtype=torch.bool), level_lengths, feature_lengths
    )

    # Independent computation: sample each head/level/point by hand with linear interpolation (zero outside).
    projected = attention.value_proj(values)[0].view(9, 2, 4)
    offsets = F.linear(queries, attention.sampling_offsets_weight, attention.sampling_offsets_bias)[0].view(4, 2, 2, 3)
    weights = attention.attention_weights(queries)[0].view(4, 2, 6).softmax(-1).view(4, 2, 2, 3)
    expected = torch.zeros(4, 2, 4)
    for query in range(4):
        for head in range(2):
            start = 0
            for level, length in enumerate(level_lengths):
                for point in range(3):
                    position = (references[0, query] * 6 - 0.5) / 2**level + offsets[query, head, level, point]
                    left = int(torch.floor(position))
                    for index, weight in ((left, left + 1 - position), (left + 1, position - left)):
                        if 0 <= index < length:
                            sample = projected[start + index, head] * weight
                            expected[query, head] += weights[query, head, level, point] * sample
                start += length
    expected = attention.output_proj(expected.view(4, 8))
    torch.testing.assert_close(got[0], expected, rtol=1e-5, atol=1e-5)
    # the returned attention weights are the ones applied: (batch, queries, heads, levels, points)
    torch.testing.assert_close(got_weights[0], weights, rtol=1e-6, atol=1e-6)


def test_tiny_model_overfits_two_videos(make_config, tokenizer):
    torch.manual_seed(0)
    model, tester = build(make_config, tokenizer, text_adapter_type="lora")
    model.train()
    inputs, labels = tester.prepare_inputs(), tester.prepare_labels()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(80):
        loss = model(**inputs, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], (losses[0], losses[-1])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda inputs: inputs.update(input_features=torch.randn(2, 20, 7)),
            r"input_features.*\(batch_size, num_units, 24\)",
        ),
        (
            lambda inputs: inputs.update(feature_attention_mask=torch.ones(2, 19)),
            "feature_attention_mask` must have shape",
        ),
        (
            lambda inputs: inputs["feature_attention_mask"].__setitem__((0, slice(None)), 0),
            r"no valid unit for video\(s\) \[0\]",
        ),
        (lambda inputs: inputs["feature_attention_mask"].__setitem__((0, 3), 0), "prefix"),
        (lambda inputs: inputs["input_features"].__setitem__((1, 2, 0), float("nan")), "NaN"),
        (lambda inputs: inputs["clip_features"].__setitem__((0, 0, 0), float("inf")), "clip_features` contains NaN"),
        (lambda inputs: inputs.pop("clip_features"), "clip_features` are required"),
        (lambda inputs: inputs.update(clip_features=torch.randn(2, 20, 5)), "clip_features` must have shape"),
        (
            lambda inputs: inputs.update(input_ids=torch.zeros(0, 5, dtype=torch.long), attention_mask=None),
            "at least one class",
        ),
        (lambda inputs: inputs.update(text_embeds=torch.randn(3, 16)), "exactly one of"),
        (lambda inputs: inputs.update(input_features=torch.randn(2, 0, 24)), "no temporal units"),
    ],
)
def test_bad_input_raises_clear_value_error(make_config, tokenizer, mutate, message):
    model, tester = build(make_config, tokenizer)
    inputs = tester.prepare_inputs()
    mutate(inputs)
    with pytest.raises(ValueError, match=message):
        model(**inputs)


def test_empty_text_embeds_raise(make_config, tokenizer):
    model, tester = build(make_config, tokenizer)
    inputs = tester.prepare_inputs()
    inputs.pop("input_ids"), inputs.pop("attention_mask")
    with pytest.raises(ValueError, match="text_embeds` must have shape"):
        model(**inputs, text_embeds=torch.zeros(0, 16))


# ---------------------------------------------------------------------------------------------------------------------
# Classification heads


def test_sigmoid_head_scores_each_prompt_on_its_own(make_config, tokenizer):
    model, tester = build(make_config, tokenizer, classification_head="sigmoid")
    # a trained-looking head: per-query scale and shift that depend on the query
    with torch.no_grad():
        for layer in model.query_scale_shift:
            layer.weight.normal_(0, 0.5)
    inputs = tester.prepare_inputs()
    with torch.no_grad():
        full = model(**inputs)
        inputs.update(tokenizer(PROMPTS[1:2], padding=True, return_tensors="pt"))
        single = model(**inputs)
    torch.testing.assert_close(full.class_probabilities, full.logits.sigmoid())
    # one prompt's probability does not depend on the other candidates, and nothing forces them to sum to 1
    torch.testing.assert_close(single.class_probabilities[..., 0], full.class_probabilities[..., 1])
    assert not torch.allclose(full.class_probabilities.sum(-1), torch.ones(2, model.config.num_queries))


def test_softmax_head_probabilities_sum_to_one(make_config, tokenizer):
    model, tester = build(make_config, tokenizer, classification_head="softmax")
    assert model.logit_bias is None and model.query_scale_shift is None
    with torch.no_grad():
        outputs = model(**tester.prepare_inputs())
    torch.testing.assert_close(outputs.class_probabilities, outputs.logits.softmax(-1))
    torch.testing.assert_close(outputs.class_probabilities.sum(-1), torch.ones(2, model.config.num_queries))


@pytest.mark.parametrize("head", ["sigmoid", "softmax"])
def test_logit_scale_is_clamped_at_100(make_config, tokenizer, head):
    model, tester = build(make_config, tokenizer, classification_head=head)
    inputs = tester.prepare_inputs()
    with torch.no_grad():
        model.logit_scale.fill_(math.log(100.0))
        at_bound = model(**inputs).logits
        model.logit_scale.fill_(8.0)  # exp(8) = 2981 would scale the cosines 30 times more
        beyond = model(**inputs).logits
    torch.testing.assert_close(beyond, at_bound)


@pytest.mark.parametrize("coupled", [False, True])
def test_classification_reaches_localization_only_when_coupled(make_config, tokenizer, coupled):
    model, tester = build(make_config, tokenizer, classification_segment_gradient=coupled)
    model.train()
    outputs = model(**tester.prepare_inputs(), labels=tester.prepare_labels())
    outputs.loss_dict["loss_class"].backward()
    localization = [*model.model.segment_heads.parameters(), *model.model.foreground_head.parameters()]
    reached = any(parameter.grad is not None and parameter.grad.abs().sum() > 0 for parameter in localization)
    assert reached == coupled
    # the class loss trains the sigmoid head's per-query scale and shift either way
    assert model.query_scale_shift[-1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("field", ["input_features", "clip_features"])
def test_non_finite_padding_does_not_leak_into_outputs(make_config, tokenizer, field):
    model, tester = build(make_config, tokenizer)
    inputs = tester.prepare_inputs()
    inputs[field][-1, tester.padded_length :] = 0.0
    with torch.no_grad():
        clean = model(**inputs)
        inputs[field][-1, tester.padded_length :] = float("nan")
        inputs[field][-1, -1] = float("inf")
        dirty = model(**inputs)
    for name in ("logits", "class_probabilities", "actionness_logits", "pred_segments", "text_embeds"):
        assert torch.isfinite(getattr(dirty, name)).all(), name
        torch.testing.assert_close(getattr(dirty, name), getattr(clean, name))


# ---------------------------------------------------------------------------------------------------------------------
# Frozen CLIP weights after every load path


def _requires_grad(model) -> set[str]:
    return {name for name, parameter in model.named_parameters() if parameter.requires_grad}


@pytest.mark.parametrize("adapter", ["bottleneck", "lora", None])
def test_reloaded_model_trains_exactly_what_a_fresh_one_trains(tokenizer, tmp_path, adapter):
    _, clip_dir = save_tiny_clip(tmp_path / "clip", tokenizer)
    fresh = ZeetadForTemporalActionDetection.from_clip(
        str(clip_dir), load_vision=True, d_model=32, num_attention_heads=4, text_adapter_type=adapter, lora_rank=4
    )
    trainable = _requires_grad(fresh)
    assert trainable == {name for name, _ in fresh.named_trainable_parameters()}
    assert not any(name.startswith(("text_projection.", "vision_encoder.")) for name in trainable)
    text_trainable = {name for name in trainable if name.startswith("text_encoder.")}
    assert bool(text_trainable) == (adapter is not None)
    assert all(".adapter." in name or ".lora_" in name for name in text_trainable)
    fresh.save_pretrained(tmp_path / "saved")
    reloaded = [
        ZeetadForTemporalActionDetection.from_pretrained(tmp_path / "saved"),
        AutoModel.from_pretrained(tmp_path / "saved"),
        ZeetadForTemporalActionDetection.from_pretrained(tmp_path / "saved", output_loading_info=True)[0],
        ZeetadForTemporalActionDetection.from_pretrained(None, config=fresh.config, state_dict=fresh.state_dict()),
    ]
    for model in reloaded:
        assert _requires_grad(model) == trainable
        assert {name for name, _ in model.named_trainable_parameters()} == trainable


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_forward_and_backward(make_config, tokenizer, tmp_path, dtype):
    model, tester = build(make_config, tokenizer)
    model.save_pretrained(tmp_path)
    half = ZeetadForTemporalActionDetection.from_pretrained(tmp_path, dtype=dtype).eval()
    assert half.dtype == dtype and half.text_encoder.dtype == dtype
    inputs = tester.prepare_inputs()
    with torch.no_grad():
        expected = model(**inputs)
        half_inputs = {key: value.to(dtype) if value.is_floating_point() else value for key, value in inputs.items()}
        outputs = half(**half_inputs)
    # positions and logits stay in float32; the rest follows the model's dtype
    assert outputs.pred_segments.dtype == outputs.logits.dtype == torch.float32
    assert outputs.foreground_logits.dtype == outputs.unit_embeds.dtype == dtype
    # a bfloat16 / float16 rounding of a float32 computation: close, not equal
    torch.testing.assert_close(outputs.pred_segments, expected.pred_segments, atol=0.02, rtol=0)
    torch.testing.assert_close(outputs.class_probabilities, expected.class_probabilities, atol=0.05, rtol=0)

    half.train()
    outputs = half(**half_inputs, labels=tester.prepare_labels())
    assert torch.isfinite(outputs.loss)
    outputs.loss.backward()
    gradient = half.get_parameter("model.segment_heads.1.layers.2.weight").grad
    assert gradient.dtype == dtype and torch.isfinite(gradient).all() and gradient.abs().sum() > 0


def test_torch_export_on_features(make_config, tokenizer):
    model, tester = build(make_config, tokenizer)
    inputs = tester.prepare_inputs()
    with torch.no_grad():
        exported = torch.export.export(model, args=(), kwargs=inputs, strict=False)
        # other values of the same shapes: the graph computes, it did not freeze the example's results
        other_inputs = {**tester.prepare_inputs(), "feature_attention_mask": inputs["feature_attention_mask"]}
        for example in (inputs, other_inputs):
            expected, outputs = model(**example), exported.module()(**example)
            for name in ("logits", "class_probabilities", "pred_segments", "actionness_logits", "foreground_logits"):
                torch.testing.assert_close(outputs[name], getattr(expected, name), msg=name)
