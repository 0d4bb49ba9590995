"""transformers' common model and config tests (`ModelTesterMixin`, `ConfigTester`) on a tiny ZEETAD."""

import copy
import unittest

import torch
from tiny_models import TINY_DETECTOR
from transformers_common import load_common_tests

from zeetad_hf import ZeetadConfig, ZeetadForTemporalActionDetection


test_modeling_common, test_configuration_common = load_common_tests()

TEXT_CONFIG = {
    "vocab_size": 99,
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 16,
    "projection_dim": 16,
    "bos_token_id": 97,
    "eos_token_id": 98,
    "pad_token_id": 98,
}


class ZeetadModelTester:
    def __init__(self, parent, batch_size=2, num_units=20, padded_length=15, num_classes=3, sequence_length=6):
        self.parent = parent
        self.batch_size = batch_size
        self.num_units = num_units
        self.padded_length = padded_length
        self.num_classes = num_classes
        self.sequence_length = sequence_length
        self.is_training = True

    def get_config(self) -> ZeetadConfig:
        return ZeetadConfig(text_config=TEXT_CONFIG, localization_feature_dim=24, **TINY_DETECTOR)

    def prepare_config_and_inputs_for_common(self):
        config = self.get_config()
        feature_attention_mask = torch.ones(self.batch_size, self.num_units, dtype=torch.long)
        feature_attention_mask[-1, self.padded_length :] = 0
        # prompts: bos, words, eos (CLIP pools the eos position)
        input_ids = test_modeling_common.ids_tensor([self.num_classes, self.sequence_length], 90) + 1
        input_ids[:, 0], input_ids[:, -1] = TEXT_CONFIG["bos_token_id"], TEXT_CONFIG["eos_token_id"]
        inputs = {
            "input_features": test_modeling_common.floats_tensor([self.batch_size, self.num_units, 24]),
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
    test_resize_embeddings = False

    def setUp(self):
        self.model_tester = ZeetadModelTester(self)
        self.config_tester = test_configuration_common.ConfigTester(
            self,
            config_class=ZeetadConfig,
            has_text_modality=False,
            d_model=32,
            num_queries=8,
            localization_feature_dim=24,
        )

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = copy.deepcopy(inputs_dict)
        if return_labels:
            inputs_dict["labels"] = self.model_tester.prepare_labels()
        return inputs_dict

    def test_config(self):
        self.config_tester.run_common_tests()
