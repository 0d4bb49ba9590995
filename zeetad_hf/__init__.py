__version__ = "0.2.0.dev0"

import os
import sys


# Thread policy (README "Threads"): OpenMP worker threads sleep when they run out of work instead of spinning. A
# spinning worker holds a core that a busy neighbour process, or this package's own video-decoding thread, needs;
# measured on 2 cores, `zeetad detect` at torch's default thread count took 16.4 s idle and 23.8 s beside one busy
# process with spinning, 13.9 s and 19.3 s with sleeping workers (benchmarks/benchmark_threads.py). libgomp reads the
# variable once, when torch loads, so this only acts when zeetad_hf is imported first (as by the `zeetad` command and
# the example scripts); a value already set, e.g. OMP_WAIT_POLICY=ACTIVE, is kept.
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path

from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoProcessor
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_zeetad import PIPELINE_TASK, ZeetadConfig
from .evaluation import temporal_action_map
from .export import export_for_remote_code
from .feature_extraction_zeetad import ZeetadFeatureExtractor
from .modelcard import build_model_card, save_model_card
from .modeling_zeetad import (
    ZeetadForTemporalActionDetection,
    ZeetadModel,
    ZeetadModelOutput,
    ZeetadPreTrainedModel,
    ZeetadTemporalActionDetectionOutput,
)
from .offline_tokenizer import build_clip_tokenizer
from .pipeline_zeetad import NoDefaultModel, ZeroShotTemporalActionDetectionPipeline
from .post_processing_zeetad import post_process_temporal_action_detection
from .processing_zeetad import VIDEO_PROMPT_TEMPLATES, ZeetadProcessor, normalize_class_name
from .segment_utils import batched_nms, grid_to_seconds, normalized_segments_to_seconds, seconds_to_normalized_segments
from .video_utils import VideoFrameSampler, VideoInfo, probe_video
from .visualization import plot_timeline
from .zero_shot_splits import load_zero_shot_split


# The installed folder of the `evaluate` metric: `evaluate.load(zeetad_hf.TEMPORAL_ACTION_MAP_METRIC)` from anywhere.
TEMPORAL_ACTION_MAP_METRIC = str(Path(__file__).resolve().parent / "metrics" / "temporal_action_map")

AutoConfig.register(ZeetadConfig.model_type, ZeetadConfig, exist_ok=True)
AutoModel.register(ZeetadConfig, ZeetadForTemporalActionDetection, exist_ok=True)
AutoFeatureExtractor.register(ZeetadConfig, ZeetadFeatureExtractor, exist_ok=True)
AutoProcessor.register(ZeetadConfig, ZeetadProcessor, exist_ok=True)
PIPELINE_REGISTRY.register_pipeline(
    PIPELINE_TASK,
    pipeline_class=ZeroShotTemporalActionDetectionPipeline,
    pt_model=AutoModel,
    default=NoDefaultModel(PIPELINE_TASK),
    type="multimodal",
)

__all__ = [
    "TEMPORAL_ACTION_MAP_METRIC",
    "VIDEO_PROMPT_TEMPLATES",
    "VideoFrameSampler",
    "VideoInfo",
    "ZeetadConfig",
    "ZeetadFeatureExtractor",
    "ZeetadForTemporalActionDetection",
    "ZeetadModel",
    "ZeetadModelOutput",
    "ZeetadPreTrainedModel",
    "ZeetadProcessor",
    "ZeetadTemporalActionDetectionOutput",
    "ZeroShotTemporalActionDetectionPipeline",
    "batched_nms",
    "build_clip_tokenizer",
    "build_model_card",
    "export_for_remote_code",
    "grid_to_seconds",
    "load_zero_shot_split",
    "normalize_class_name",
    "normalized_segments_to_seconds",
    "plot_timeline",
    "post_process_temporal_action_detection",
    "probe_video",
    "save_model_card",
    "seconds_to_normalized_segments",
    "temporal_action_map",
]
