"""Export a ZEETAD checkpoint that runs with `trust_remote_code=True` where `zeetad_hf` is not installed."""

import os
from contextlib import contextmanager

from transformers.dynamic_module_utils import custom_object_save

from .configuration_zeetad import PIPELINE_TASK
from .pipeline_zeetad import ZeroShotTemporalActionDetectionPipeline


# Auto class of every exported object; transformers resolves `auto_map` entries through these names.
AUTO_CLASSES = {
    "config": "AutoConfig",
    "model": "AutoModel",
    "processor": "AutoProcessor",
    "feature_extractor": "AutoFeatureExtractor",
}


@contextmanager
def _registered_for_auto_classes(model, processor):
    """Register the four classes for their Auto class for the duration of an export, then undo every side effect.

    `register_for_auto_class` sets a class attribute, and saving writes `auto_map` (and here `custom_pipelines`)
    onto the live objects; left in place, every later plain `save_pretrained` would silently export remote code too.
    """
    objects = {
        "config": model.config,
        "model": model,
        "processor": processor,
        "feature_extractor": processor.feature_extractor,
    }
    saved_classes = {name: type(obj).__dict__.get("_auto_class") for name, obj in objects.items()}
    instance_attributes = [
        (obj, attribute) for obj in objects.values() for attribute in ("auto_map", "custom_pipelines")
    ]
    saved_attributes = {(id(obj), attribute): obj.__dict__.get(attribute) for obj, attribute in instance_attributes}
    try:
        for name, obj in objects.items():
            obj.register_for_auto_class(AUTO_CLASSES[name])
        yield
    finally:
        for name, obj in objects.items():
            type(obj)._auto_class = saved_classes[name]
        for obj, attribute in instance_attributes:
            previous = saved_attributes[(id(obj), attribute)]
            if previous is not None:
                setattr(obj, attribute, previous)
            elif attribute in obj.__dict__:
                delattr(obj, attribute)


def export_for_remote_code(
    model, processor, save_directory: str | os.PathLike, is_main_process: bool = True
) -> list[str]:
    r"""
    Save `model` and `processor` as a self-contained remote-code checkpoint: flat `.py` files next to the weights,
    `auto_map` in `config.json` and `processor_config.json`, and `custom_pipelines` in `config.json`, so that

    ```python
    pipeline("zero-shot-temporal-action-detection", model=save_directory, trust_remote_code=True)
    ```

    works where `zeetad_hf` is not installed (the code files need `torch`, `transformers`, `peft`, `numpy` and `av`).
    Where `zeetad_hf` is imported, its registered classes take precedence over the copied files. Recommend users pin
    `revision=<commit sha>` when loading remote code from the Hub.

    The copied files are the modules of the configuration, model, processor, feature extractor and pipeline classes
    plus every module they import with a single-dot relative import (`configuration_zeetad.py`, `modeling_zeetad.py`,
    `loss_zeetad.py`, `segment_utils.py`, `post_processing_zeetad.py`, `feature_extraction_zeetad.py`,
    `processing_zeetad.py`, `pipeline_zeetad.py`, `video_utils.py`).

    Args:
        model ([`ZeetadForTemporalActionDetection`]):
            The model to export.
        processor ([`ZeetadProcessor`]):
            Its processor.
        save_directory (`str` or `os.PathLike`):
            Output folder (created if needed).
        is_main_process (`bool`, *optional*, defaults to `True`):
            In a multi-process run, whether this process writes (every process must call it, as `save_pretrained`).

    Returns:
        `list[str]`: the file names in `save_directory`.
    """
    os.makedirs(save_directory, exist_ok=True)
    pipeline_class = ZeroShotTemporalActionDetectionPipeline
    with _registered_for_auto_classes(model, processor):
        model.config.custom_pipelines = {
            PIPELINE_TASK: {
                "impl": f"{pipeline_class.__module__.rsplit('.', 1)[-1]}.{pipeline_class.__name__}",
                "pt": ["AutoModel"],
                "type": "multimodal",
            }
        }
        model.save_pretrained(save_directory, is_main_process=is_main_process)
        if is_main_process:
            processor.save_pretrained(save_directory)
            # the pipeline module (and its relative imports) travel like the model code; no auto_map entry needed
            custom_object_save(pipeline_class, save_directory)
    return sorted(os.listdir(save_directory))


__all__ = ["export_for_remote_code"]
