"""ZEETAD model configuration."""

from huggingface_hub.dataclasses import strict
from transformers import CLIPTextConfig, CLIPVisionConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec


# The pipeline task of ZEETAD checkpoints (registered by `import zeetad_hf`, named in remote-code exports).
PIPELINE_TASK = "zero-shot-temporal-action-detection"


TEXT_ADAPTER_TYPES = ("bottleneck", "lora")
CLASSIFICATION_HEADS = ("sigmoid", "softmax")
# Initial log temperature of each head when `logit_scale_init_value` is not given: CLIP's ln(100) for the softmax over
# the candidates, SigLIP's ln(10) for independent sigmoids (paired with the bias `logit_bias_init_value`).
DEFAULT_LOGIT_SCALE_INIT = {"softmax": 4.6052, "sigmoid": 2.3026}


@strict
class ZeetadConfig(PreTrainedConfig):
    r"""
    Configuration of [`ZeetadForTemporalActionDetection`]: zero-shot end-to-end temporal action detection (ZEETAD,
    arXiv 2311.00729) on top of a CLIP text encoder with trainable adapters.

    Architecture (dual localization + zero-shot proposal classification):

    Args:
        text_config (`dict` or [`CLIPTextConfig`], *optional*):
            Configuration of the frozen CLIP text encoder. Its `projection_dim` is the dimension of the joint CLIP
            embedding space, i.e. the dimension of `clip_features`.
        vision_config (`dict` or [`CLIPVisionConfig`], *optional*):
            Configuration of an optional frozen CLIP vision tower used to embed raw frames. `None` (default) means the
            model is fed pre-computed CLIP frame embeddings.
        localization_feature_dim (`int`, *optional*):
            Dimension of the localization features (`input_features`), e.g. 2048 for two-stream I3D or 512 for TSP.
            `None` means "CLIP only": `input_features` are CLIP frame embeddings of dimension
            `text_config.projection_dim` and feed both localization and classification.
        d_model (`int`, *optional*, defaults to 256):
            Width of the localization transformer.
        num_feature_levels (`int`, *optional*, defaults to 4):
            Number of temporal scales; level `l` has stride `2**l` with respect to the input units.
        encoder_layers (`int`, *optional*, defaults to 2):
            Number of deformable encoder layers.
        decoder_layers (`int`, *optional*, defaults to 4):
            Number of deformable decoder layers (each refines the segments of the previous one).
        num_attention_heads (`int`, *optional*, defaults to 8):
            Attention heads in every attention layer.
        encoder_ffn_dim (`int`, *optional*, defaults to 1024):
            Hidden size of the encoder feed-forward layers.
        decoder_ffn_dim (`int`, *optional*, defaults to 1024):
            Hidden size of the decoder feed-forward layers.
        encoder_num_points (`int`, *optional*, defaults to 4):
            Sampling points per head and level in encoder deformable attention.
        decoder_num_points (`int`, *optional*, defaults to 4):
            Sampling points per head and level in decoder deformable attention.
        num_queries (`int`, *optional*, defaults to 40):
            Number of action queries, i.e. the maximum number of detections per video before post-processing.
        dropout (`float`, *optional*, defaults to 0.1):
            Dropout of the transformer's residual branches.
        attention_dropout (`float`, *optional*, defaults to 0.0):
            Dropout of the decoder self-attention weights.
        activation_function (`str`, *optional*, defaults to `"relu"`):
            Activation of the feed-forward layers (any key of `transformers.activations.ACT2FN`).
        semantic_adapter_dim (`int`, *optional*, defaults to 128):
            Bottleneck width of the residual adapter applied to CLIP frame embeddings before they are compared with
            class prompts. Its output projection starts at zero, so at initialisation it is the identity.
        use_foreground_mask (`bool`, *optional*, defaults to `True`):
            Weight the frame similarities pooled under a proposal by the encoder's per-unit foreground probability
            (the paper's segment mask). `False` pools uniformly over the units the proposal covers.
        classification_head (`str`, *optional*, defaults to `"sigmoid"`):
            How a proposal's pooled frame/prompt cosine similarities become class scores. `"sigmoid"`: an independent
            probability per (query, prompt) pair, `sigmoid(s_q * (cos - b_q) + b_0)`, with a scale `s_q` and shift
            `b_q` predicted from the query's decoder state and a global bias `b_0` (OWL-ViT / SigLIP family); it can
            say that no candidate fits, and it is trained with a sigmoid focal loss over all prompts. `"softmax"`:
            `softmax(exp(logit_scale) * cos)` over the candidates (cross-entropy), which only ranks the candidates
            against each other. Neither has per-class parameters, so both transfer to unseen prompts.
        logit_scale_init_value (`float`, *optional*):
            Initial value of the learnable log temperature of the cosine similarities, clamped to at most `ln(100)`
            in the forward pass as CLIP does. Defaults to `ln(100)` (CLIP) for the softmax head and `ln(10)`
            (SigLIP) for the sigmoid head.
        logit_bias_init_value (`float`, *optional*, defaults to -10.0):
            Initial value of the global bias `b_0` of the sigmoid head (SigLIP's initialisation: every pair starts
            improbable, so the many negative pairs do not dominate the first steps). Unused by the softmax head.
        classification_segment_gradient (`bool`, *optional*, defaults to `True`):
            Let the classification loss reach the localization branch: gradients of the class logits flow through
            the pooling weights into the predicted segments and the foreground mask (the paper's claim that the two
            branches help each other; it did on held-out seen-class videos). `False` detaches both, so
            classification never moves the boundaries.
        text_adapter_type (`str`, *optional*, defaults to `"bottleneck"`):
            Trainable adapters in the frozen CLIP text encoder: `"bottleneck"` (a residual bottleneck after every MLP,
            the paper's "lightweight adapters"), `"lora"` (LoRA through `peft`) or `None` (fully frozen encoder).
        text_adapter_bottleneck_dim (`int`, *optional*, defaults to 64):
            Bottleneck width of the text adapters when `text_adapter_type="bottleneck"`.
        lora_rank (`int`, *optional*, defaults to 8):
            LoRA rank when `text_adapter_type="lora"`.
        lora_alpha (`int`, *optional*, defaults to 16):
            LoRA scaling numerator (`alpha / rank`).
        lora_dropout (`float`, *optional*, defaults to 0.0):
            Dropout on the LoRA branch.
        lora_target_modules (`list[str]`, *optional*, defaults to `["q_proj", "v_proj"]`):
            Names of the CLIP text linear layers that get LoRA.
        matcher_class_cost (`float`, *optional*, defaults to 1.0):
            Weight of the class cost in the Hungarian matching cost: the focal cost of Deformable DETR (positive minus
            negative focal term of the ground-truth class's sigmoid probability) for the sigmoid head,
            `-p(ground-truth class)` for the softmax head.
        matcher_actionness_cost (`float`, *optional*, defaults to 2.0):
            Weight of the focal actionness cost in the matching cost.
        matcher_l1_cost (`float`, *optional*, defaults to 5.0):
            Weight of the L1 distance between `(center, width)` segments in the matching cost.
        matcher_giou_cost (`float`, *optional*, defaults to 2.0):
            Weight of `-gIoU` in the matching cost.
        actionness_loss_coefficient (`float`, *optional*, defaults to 2.0):
            Weight of the sigmoid focal loss on class-agnostic actionness.
        class_loss_coefficient (`float`, *optional*, defaults to 1.0):
            Weight of the classification loss: a sigmoid focal loss over every (query, prompt) pair (matched query:
            one-hot target, unmatched: all zeros) for the sigmoid head, the cross-entropy over the prompts of matched
            queries for the softmax head; both divided by the number of ground-truth segments.
        l1_loss_coefficient (`float`, *optional*, defaults to 5.0):
            Weight of the L1 loss on matched `(center, width)` segments.
        giou_loss_coefficient (`float`, *optional*, defaults to 2.0):
            Weight of the `1 - gIoU` loss on matched segments.
        foreground_loss_coefficient (`float`, *optional*, defaults to 1.0):
            Weight of the per-unit foreground (segment mask) focal loss.
        focal_alpha (`float`, *optional*, defaults to 0.25):
            Alpha of the sigmoid focal losses and of the focal matching cost.
        focal_gamma (`float`, *optional*, defaults to 2.0):
            Gamma of the sigmoid focal losses and of the focal matching cost.
        auxiliary_loss (`bool`, *optional*, defaults to `True`):
            Add the matching losses of every intermediate decoder layer.
        init_std (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialisation of the localization transformer.
    """

    model_type = "zeetad"
    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=CLIPTextConfig),
        "vision_config": SubConfigSpec(config_class=CLIPVisionConfig, optional=True),
    }
    attribute_map = {"hidden_size": "d_model"}

    text_config: dict | CLIPTextConfig | None = None
    vision_config: dict | CLIPVisionConfig | None = None
    localization_feature_dim: int | None = None
    d_model: int = 256
    num_feature_levels: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 4
    num_attention_heads: int = 8
    encoder_ffn_dim: int = 1024
    decoder_ffn_dim: int = 1024
    encoder_num_points: int = 4
    decoder_num_points: int = 4
    num_queries: int = 40
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_function: str = "relu"
    semantic_adapter_dim: int = 128
    use_foreground_mask: bool = True
    classification_head: str = "sigmoid"
    logit_scale_init_value: float | None = None
    logit_bias_init_value: float = -10.0
    classification_segment_gradient: bool = True
    text_adapter_type: str | None = "bottleneck"
    text_adapter_bottleneck_dim: int = 64
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target_modules: list[str] | tuple[str, ...] = ("q_proj", "v_proj")
    matcher_class_cost: float = 1.0
    matcher_actionness_cost: float = 2.0
    matcher_l1_cost: float = 5.0
    matcher_giou_cost: float = 2.0
    actionness_loss_coefficient: float = 2.0
    class_loss_coefficient: float = 1.0
    l1_loss_coefficient: float = 5.0
    giou_loss_coefficient: float = 2.0
    foreground_loss_coefficient: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    auxiliary_loss: bool = True
    init_std: float = 0.02
    # a localization encoder and a query decoder, as DETR-style detectors (outputs `encoder_*` / `decoder_*` states)
    is_encoder_decoder: bool = True

    def __post_init__(self, **kwargs):
        if self.logit_scale_init_value is None and self.classification_head in DEFAULT_LOGIT_SCALE_INIT:
            self.logit_scale_init_value = DEFAULT_LOGIT_SCALE_INIT[self.classification_head]
        super().__post_init__(**kwargs)
        self._prefer_the_installed_pipeline()
        # Run the cross-field checks here too so that users get the plain `ValueError` (the strict dataclass
        # machinery re-runs them after `__init__` wrapped in its own exception type).
        self.validate_architecture()

    def _prefer_the_installed_pipeline(self) -> None:
        """Drop the pipeline task from `custom_pipelines` when this class is the installed package's own.

        A checkpoint exported for remote code ([`~zeetad_hf.export_for_remote_code`], and every folder training
        pushes) names its copy of the pipeline under `custom_pipelines` for environments without `zeetad_hf`; there
        `pipeline()` asks for `trust_remote_code=True`. The installed package registers the task itself, so its
        users run the installed pipeline without that flag. (The copy of this file in a checkpoint is imported under
        another module name and keeps the entry.)
        """
        custom_pipelines = getattr(self, "custom_pipelines", None)
        if __name__ == "zeetad_hf.configuration_zeetad" and isinstance(custom_pipelines, dict):
            self.custom_pipelines = {task: spec for task, spec in custom_pipelines.items() if task != PIPELINE_TASK}
            if not self.custom_pipelines:
                del self.custom_pipelines

    @property
    def clip_embedding_dim(self) -> int:
        """Dimension of the joint CLIP embedding space (`clip_features` and projected prompts)."""
        return self.text_config.projection_dim

    def validate_architecture(self):
        """Cross-field checks; raises `ValueError` naming the field and its value."""
        positive_fields = (
            "d_model",
            "num_feature_levels",
            "decoder_layers",
            "num_attention_heads",
            "encoder_ffn_dim",
            "decoder_ffn_dim",
            "encoder_num_points",
            "decoder_num_points",
            "num_queries",
            "semantic_adapter_dim",
            "text_adapter_bottleneck_dim",
            "lora_rank",
        )
        for name in positive_fields:
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value}.")
        if self.encoder_layers < 0:
            raise ValueError(f"`encoder_layers` must be >= 0, got {self.encoder_layers}.")
        if self.localization_feature_dim is not None and self.localization_feature_dim < 1:
            raise ValueError(
                f"`localization_feature_dim` must be a positive integer or None, got {self.localization_feature_dim}."
            )
        if self.d_model % self.num_attention_heads != 0:
            raise ValueError(
                f"`d_model` ({self.d_model}) must be divisible by `num_attention_heads` ({self.num_attention_heads})."
            )
        if self.text_adapter_type is not None and self.text_adapter_type not in TEXT_ADAPTER_TYPES:
            raise ValueError(
                f"`text_adapter_type` must be one of {TEXT_ADAPTER_TYPES} or None, got {self.text_adapter_type!r}."
            )
        if self.classification_head not in CLASSIFICATION_HEADS:
            raise ValueError(
                f"`classification_head` must be one of {CLASSIFICATION_HEADS}, got {self.classification_head!r}."
            )
        if self.text_adapter_type == "lora" and len(self.lora_target_modules) == 0:
            raise ValueError("`lora_target_modules` must name at least one module when `text_adapter_type='lora'`.")
        for name in ("dropout", "attention_dropout", "lora_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {value}.")
        if not 0.0 <= self.focal_alpha <= 1.0:
            raise ValueError(f"`focal_alpha` must be in [0, 1], got {self.focal_alpha}.")
        if self.focal_gamma < 0:
            raise ValueError(f"`focal_gamma` must be >= 0, got {self.focal_gamma}.")
        loss_fields = [name for name in self.__dataclass_fields__ if name.endswith(("_cost", "_coefficient"))]
        for name in loss_fields:
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)}.")


__all__ = ["ZeetadConfig"]
