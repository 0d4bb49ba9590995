"""CLIP frame embeddings of a video, streamed chunk by chunk, and a resumable folder-to-folder extractor."""

import os
from collections.abc import Callable, Sequence
from contextlib import closing

import numpy as np
import torch

from .feature_extraction_zeetad import ZeetadFeatureExtractor
from .file_utils import atomic_write, write_json_atomic
from .video_utils import VideoFrameSampler


FEATURES_SUFFIX = ".npy"
METADATA_SUFFIX = ".json"
# initial size of the embedding buffer, in units, of a video whose container declares no duration (doubled as needed)
UNKNOWN_LENGTH_CAPACITY = 1024


def embed_video_frames(
    sampler: VideoFrameSampler,
    feature_extractor: ZeetadFeatureExtractor,
    embed_pixels: Callable[[torch.Tensor], torch.Tensor],
    frame_batch_size: int = 32,
    progress_callback: Callable[[int], None] | None = None,
    num_prefetched_chunks: int = 2,
) -> torch.Tensor:
    r"""
    CLIP embeddings of the sampled frames of one video, with memory that does not grow with the video's length.

    A background thread decodes the video, converts the sampled frames to RGB and resizes them to the feature
    extractor's [`~ZeetadFeatureExtractor.resized_size`] with FFmpeg's scaler, up to `num_prefetched_chunks` chunks
    ahead, while `embed_pixels` runs on the current chunk (see [`~VideoFrameSampler.iter_chunks`]). All per-chunk
    memory is allocated once per video: the decoded frames go to reused buffers, the crop + normalisation to one
    reused `pixel_values` tensor, and the embeddings to one `(num_units, dim)` tensor sized from the video's
    declared duration (grown by doubling when that is unknown or too short), so no per-chunk allocation outlives its
    chunk and fragments the heap.

    Args:
        sampler ([`VideoFrameSampler`]):
            The video and its sampling rate (one temporal unit per sampled frame).
        feature_extractor ([`ZeetadFeatureExtractor`]):
            CLIP preprocessing of the frames.
        embed_pixels (`Callable[[torch.Tensor], torch.Tensor]`):
            Maps preprocessed frames `(n, 3, height, width)` to embeddings `(n, dim)`, e.g.
            [`~ZeetadForTemporalActionDetection.get_clip_features`] (it receives the preprocessed float32 CPU tensor
            and moves it to its own device/dtype). The tensor is a buffer reused for the next chunk: it must not be
            kept beyond the call.
        frame_batch_size (`int`, *optional*, defaults to 32):
            Frames per decoded chunk and per `embed_pixels` call.
        progress_callback (`Callable[[int], None]`, *optional*):
            Called with the number of frames of every embedded chunk.
        num_prefetched_chunks (`int`, *optional*, defaults to 2):
            Chunks the decoder thread may prepare ahead of `embed_pixels`; 0 decodes in the calling thread,
            alternating with `embed_pixels`.

    Returns:
        `torch.Tensor` of shape `(num_units, dim)`, on the device and in the dtype of `embed_pixels`' output.
    """
    info = sampler.info
    frame_size = feature_extractor.resized_size(info.height, info.width)
    crop_size = (feature_extractor.crop_size["height"], feature_extractor.crop_size["width"])
    # frame_batch_size, 3, crop_height, crop_width: reused by every chunk
    pixel_values = torch.empty((frame_batch_size, 3, *crop_size), dtype=torch.float32)
    embeddings = None
    num_units = 0
    chunks = sampler.iter_chunks(frame_batch_size, frame_size, num_prefetched_chunks)
    # closing stops the decoder thread at once when `embed_pixels` or `progress_callback` raises
    with closing(chunks):
        for frames, _ in chunks:
            chunk_pixels = feature_extractor.preprocess_frames(frames, out=pixel_values[: len(frames)])
            chunk_embeddings = embed_pixels(chunk_pixels)
            end = num_units + len(frames)
            if embeddings is None:
                # one more unit than declared: the decoded duration may round up past the declared one
                capacity = max(end, (sampler.num_units or UNKNOWN_LENGTH_CAPACITY) + 1)
                embeddings = chunk_embeddings.new_empty((capacity, chunk_embeddings.shape[-1]))
            elif end > embeddings.shape[0]:
                grown = embeddings.new_empty((max(end, 2 * embeddings.shape[0]), embeddings.shape[-1]))
                grown[:num_units] = embeddings[:num_units]
                embeddings = grown
            embeddings[num_units:end] = chunk_embeddings
            num_units = end
            # freed now, not during the next chunk's tower call: only the rows copied above outlive the chunk
            del chunk_embeddings
            if progress_callback is not None:
                progress_callback(len(frames))
    return embeddings[:num_units]


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
