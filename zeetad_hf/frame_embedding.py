"""CLIP frame embeddings of a video, streamed chunk by chunk, and a resumable folder-to-folder extractor."""

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .feature_extraction_zeetad import ZeetadFeatureExtractor
from .file_utils import atomic_write, write_json_atomic
from .video_utils import VideoFrameSampler


FEATURES_SUFFIX = ".npy"
METADATA_SUFFIX = ".json"


def embed_video_frames(
    sampler: VideoFrameSampler,
    feature_extractor: ZeetadFeatureExtractor,
    embed_pixels: Callable[[torch.Tensor], torch.Tensor],
    frame_batch_size: int = 32,
    progress_callback: Callable[[int], None] | None = None,
) -> torch.Tensor:
    r"""
    CLIP embeddings of the sampled frames of one video; only one chunk of frames is in memory at a time.

    Args:
        sampler ([`VideoFrameSampler`]):
            The video and its sampling rate (one temporal unit per sampled frame).
        feature_extractor ([`ZeetadFeatureExtractor`]):
            CLIP preprocessing of the frames.
        embed_pixels (`Callable[[torch.Tensor], torch.Tensor]`):
            Maps preprocessed frames `(n, 3, height, width)` to embeddings `(n, dim)`, e.g.
            [`~ZeetadForTemporalActionDetection.get_clip_features`] (it receives the preprocessed float32 tensor and
            moves it to its own device/dtype).
        frame_batch_size (`int`, *optional*, defaults to 32):
            Frames per decoded chunk and per `embed_pixels` call.
        progress_callback (`Callable[[int], None]`, *optional*):
            Called with the number of frames of every embedded chunk.

    Returns:
        `torch.FloatTensor` of shape `(num_units, dim)`.
    """
    embeddings = []
    for frames, _ in sampler.iter_chunks(frame_batch_size):
        embeddings.append(embed_pixels(feature_extractor.preprocess_frames(frames)))
        if progress_callback is not None:
            progress_callback(len(frames))
    return torch.cat(embeddings)


def extract_video_features(
    video_paths: Sequence[str],
    output_dir: str,
    feature_extractor: ZeetadFeatureExtractor,
    embed_pixels: Callable[[torch.Tensor], torch.Tensor],
    frame_batch_size: int = 32,
    progress_callback: Callable[[int], None] | None = None,
) -> list[str]:
    r"""
    Write one CLIP frame-embedding file per video, `<stem>.npy` (float32 `(num_units, dim)`), and next to it
    `<stem>.json` with its timing (`fps` = sampling rate, `feature_stride` 1, `window_size` 1, `duration`,
    `num_units`, `source`), the metadata that [`~zeetad_hf.data`] loaders and post-processing need.

    Both files are written atomically and the metadata last, so a video counts as finished exactly when its `.json`
    exists; finished videos are skipped (the extraction resumes after an interruption).

    Args:
        video_paths (`Sequence[str]`):
            Videos to process; their file stems name the outputs and must be unique.
        output_dir (`str`):
            Output folder (created if needed).
        feature_extractor ([`ZeetadFeatureExtractor`]):
            Sampling rate and CLIP preprocessing.
        embed_pixels (`Callable[[torch.Tensor], torch.Tensor]`):
            Preprocessed frames to embeddings (see [`embed_video_frames`]).
        frame_batch_size (`int`, *optional*, defaults to 32):
            Frames per vision-tower call.
        progress_callback (`Callable[[int], None]`, *optional*):
            Called with the number of frames of every embedded chunk.

    Returns:
        `list[str]`: the videos processed by this call (finished ones skipped).
    """
    stems = [os.path.splitext(os.path.basename(path))[0] for path in video_paths]
    duplicates = sorted({stem for stem in stems if stems.count(stem) > 1})
    if duplicates:
        raise ValueError(
            f"Several videos share the file stem(s) {duplicates}; their features would overwrite each other."
        )
    os.makedirs(output_dir, exist_ok=True)
    processed = []
    for path, stem in zip(video_paths, stems):
        metadata_path = os.path.join(output_dir, stem + METADATA_SUFFIX)
        if os.path.exists(metadata_path):
            continue
        sampler = VideoFrameSampler(path, feature_extractor.sampling_fps)
        with torch.inference_mode():
            features = embed_video_frames(
                sampler, feature_extractor, embed_pixels, frame_batch_size, progress_callback
            )
        array = features.float().cpu().numpy()
        with atomic_write(os.path.join(output_dir, stem + FEATURES_SUFFIX), "wb") as handle:
            np.save(handle, array)
        metadata = {
            "fps": sampler.sampling_fps,
            "feature_stride": 1,
            "window_size": 1,
            "duration": float(sampler.duration),
            "num_units": int(array.shape[0]),
            "source": os.path.abspath(path),
        }
        write_json_atomic(metadata_path, metadata)
        processed.append(path)
    return processed


__all__ = ["embed_video_frames", "extract_video_features"]
