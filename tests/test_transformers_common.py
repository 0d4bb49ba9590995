"""transformers' own common model and config tests (`ModelTesterMixin`, `ConfigTester`) on a tiny ZEETAD.

Everything runs from the pinned transformers release's source distribution (see `transformers_common.py`). Tests
overridden here say why in their docstring. The common tests skip themselves, with transformers' own messages, where
they do not apply (run `pytest -rs tests/test_transformers_common.py` to list them):
- no accelerator, MPS, DeepSpeed, Flash Attention 2/3/4, `kernels` or multiple devices on the CI machine;
- slow tests (transformers' `@slow`), which pass with `RUN_SLOW=1`;
- features ZEETAD does not have: generation / language-modeling heads, KV caches, `inputs_embeds`, position
  embeddings to resize, sliding windows, mixture-of-experts routing, tensor-parallel plans, `_keep_in_fp32_modules`,
  weight-conversion mappings, a `base_model_class` in the tester, composite sub-config dispatch (the tester's config
  has no vision tower);
- `enable_input_require_grads` with gradient checkpointing: the CLIP token embeddings are frozen by design, so no
  loss gradient reaches them;
- selecting hidden states by layer index (`output_hidden_states=[...]`): ZEETAD returns them through explicit flags,
  not transformers' `capture_outputs` recorders (a known gap).
`test_can_init_all_missing_weights`, which transformers gates by the model's year, runs here: on the tester's model and,
in `ZeetadNestedTowerInitTest`, with a CLIP vision tower and each text adapter.
"""

import copy
import unittest

import torch
from tiny_models import TINY_DETECTOR, TINY_TEXT_SHAPE, TINY_VISION_CONFIG
from transformers_common import load_common_tests

from zeetad_hf import ZeetadConfig, ZeetadForTemporalActionDetection


test_modeling_common, test_configuration_common = load_common_tests()

TEXT_CONFIG = {
    "vocab_size": 99,
    **TINY_TEXT_SHAPE,
    "bos_token_id": 97,
    "eos_token_id": 98,
    "pad_token_id": 98,
}
LOCALIZATION_DIM = 24
# equal depths: the common tests expect one number of hidden layers for the encoder and the decoder
NUM_LAYERS = 2


class ZeetadModelTester:
    def __init__(
        self,
        parent,
        batch_size=2,
        num_units=20,
        padded_length=15,
        num_classes=3,
        sequence_length=6,
        **config_overrides,
    ):
        self.parent = parent
        self.config_overrides = config_overrides
        self.batch_size = batch_size
        self.num_units = num_units
        self.padded_length = padded_length
        self.num_classes = num_classes
        self.sequence_length = sequence_length
        self.is_training = True
        self.hidden_size = TINY_DETECTOR["d_model"]
        self.num_attention_heads = TINY_DETECTOR["num_attention_heads"]
        self.num_hidden_layers = NUM_LAYERS
        # the encoder runs over every pyramid level: 20 + 10 + 5 units
        self.encoder_seq_length = sum(
            -(-num_units // 2**level) for level in range(TINY_DETECTOR["num_feature_levels"])
        )
        self.decoder_seq_length = TINY_DETECTOR["num_queries"]

    def get_config(self) -> ZeetadConfig:
        settings = {
            **TINY_DETECTOR,
            "encoder_layers": NUM_LAYERS,
            "decoder_layers": NUM_LAYERS,
            **self.config_overrides,
        }
        return ZeetadConfig(text_config=TEXT_CONFIG, localization_feature_dim=LOCALIZATION_DIM, **settings)

    def prepare_config_and_inputs_for_common(self):
        config = self.get_config()
        feature_attention_mask = torch.ones(self.batch_size, self.num_units, dtype=torch.long)
        feature_attention_mask[-1, self.padded_length :] = 0
        # prompts: bos, words, eos (CLIP pools the eos position)
        input_ids = test_modeling_common.ids_tensor([self.num_classes, self.sequence_length], 90) + 1
        input_ids[:, 0], input_ids[:, -1] = TEXT_CONFIG["bos_token_id"], TEXT_CONFIG["eos_token_id"]
        inputs = {
            "input_features": test_modeling_common.floats_tensor([self.batch_size, self.num_units, LOCALIZATION_DIM]),
            "feature_attention_mask": feature_attention_mask,
            "clip_features": test_modeling_common.floats_tensor([self.batch_size, self.num_units, 16]),
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
        }
        return config, inputs

    def prepare_labels(self):
        return [
            {"class_labels": torch.tensor([0, 2]), "segments": torch.tensor([[0.3, 0.2], [0.7, 0.1]])},
            {"class_labels": torch.tensor([1]), "segments": torch.tensor([[0.5, 0.4]])},
        ][: self.batch_size]


class ZeetadModelTest(test_modeling_common.ModelTesterMixin, unittest.TestCase):
    all_model_classes = (ZeetadForTemporalActionDetection,)
    is_encoder_decoder = True
    # transformers gates this test by the model's year; ours runs it (nested CLIP towers included)
    test_can_init_all_missing_weights_before_2023 = True
    test_resize_embeddings = False
    # inputs the eager/sdpa comparison passes besides `input_features` (it pads them to its own batch of 7; the class
    # prompts then become 7 prompts, which ZEETAD accepts: prompts are not tied to the batch)
    additional_model_inputs = ["clip_features", "input_ids"]

    def setUp(self):
        self.model_tester = ZeetadModelTester(self)
        self.config_tester = test_configuration_common.ConfigTester(
            self,
            config_class=ZeetadConfig,
            has_text_modality=False,
            d_model=32,
            num_queries=8,
            localization_feature_dim=LOCALIZATION_DIM,
        )

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = copy.deepcopy(inputs_dict)
        if return_labels:
            inputs_dict["labels"] = self.model_tester.prepare_labels()
        return inputs_dict

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_attention_outputs(self):
        """Overridden: the common test expects `(heads, length, key_length)` attention maps everywhere, but the
        encoder and the cross-attention are deformable (each query attends to `levels x points` sampled positions),
        as in transformers' Deformable DETR, whose test overrides it too. Checked here: count, shapes, that the maps
        are distributions, the config switch, and that `sdpa` gives no query self-attention maps."""
        config, inputs_dict = self.model_tester.prepare_config_and_inputs_for_common()
        tester = self.model_tester
        heads, levels, points = tester.num_attention_heads, config.num_feature_levels, config.encoder_num_points
        for from_config in (False, True):
            config.output_attentions = from_config
            model = ZeetadForTemporalActionDetection._from_config(config, attn_implementation="eager").eval()
            with torch.no_grad():
                outputs = model(**inputs_dict, **({} if from_config else {"output_attentions": True}))
            for name, shape in (
                ("encoder_attentions", (tester.batch_size, tester.encoder_seq_length, heads, levels, points)),
                (
                    "decoder_attentions",
                    (tester.batch_size, heads, tester.decoder_seq_length, tester.decoder_seq_length),
                ),
                ("cross_attentions", (tester.batch_size, tester.decoder_seq_length, heads, levels, points)),
            ):
                maps = getattr(outputs, name)
                self.assertEqual(len(maps), NUM_LAYERS, name)
                self.assertEqual(tuple(maps[0].shape), shape, name)
                sums = maps[0].flatten(-2).sum(-1) if name != "decoder_attentions" else maps[0].sum(-1)
                torch.testing.assert_close(sums, torch.ones_like(sums), msg=name)
        config.output_attentions = False
        model = ZeetadForTemporalActionDetection._from_config(config, attn_implementation="sdpa").eval()
        with torch.no_grad():
            outputs = model(**inputs_dict, output_attentions=True)
        self.assertEqual(outputs.decoder_attentions, (None,) * NUM_LAYERS)
        self.assertEqual(len(outputs.cross_attentions), NUM_LAYERS)


class ZeetadNestedTowerInitTest(unittest.TestCase):
    """transformers' `test_can_init_all_missing_weights` on ZEETADs with a CLIP vision tower and each text adapter:
    weights missing from a checkpoint get exactly what the constructor gives them, in every nested tower."""

    all_model_classes = (ZeetadForTemporalActionDetection,)
    test_can_init_all_missing_weights_before_2023 = True

    def test_missing_weights_get_what_the_constructor_gives_in_every_tower(self):
        for adapter in ("bottleneck", "lora", None):
            with self.subTest(text_adapter_type=adapter):
                self.model_tester = ZeetadModelTester(
                    self, vision_config=TINY_VISION_CONFIG, text_adapter_type=adapter
                )
                test_modeling_common.ModelTesterMixin.test_can_init_all_missing_weights(self)
