__version__ = "0.1.0.dev0"

from transformers import AutoConfig, AutoModel

from .configuration_zeetad import ZeetadConfig
from .modeling_zeetad import (
    ZeetadForTemporalActionDetection,
    ZeetadModel,
    ZeetadModelOutput,
    ZeetadPreTrainedModel,
    ZeetadTemporalActionDetectionOutput,
)
from .offline_tokenizer import build_clip_tokenizer
from .post_processing_zeetad import post_process_temporal_action_detection
from .segment_utils import batched_nms, grid_to_seconds, normalized_segments_to_seconds, seconds_to_normalized_segments


AutoConfig.register(ZeetadConfig.model_type, ZeetadConfig, exist_ok=True)
AutoModel.register(ZeetadConfig, ZeetadForTemporalActionDetection, exist_ok=True)

__all__ = [
    "ZeetadConfig",
    "ZeetadForTemporalActionDetection",
    "ZeetadModel",
    "ZeetadModelOutput",
    "ZeetadPreTrainedModel",
    "ZeetadTemporalActionDetectionOutput",
    "batched_nms",
    "build_clip_tokenizer",
    "grid_to_seconds",
    "normalized_segments_to_seconds",
    "post_process_temporal_action_detection",
    "seconds_to_normalized_segments",
]
