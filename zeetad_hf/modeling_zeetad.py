"""PyTorch ZEETAD: zero-shot end-to-end temporal action detection (arXiv 2311.00729).

Data flow of one forward pass:

1. Dual localization ([`ZeetadModel`]): localization features -> multi-scale 1-D pyramid -> deformable encoder ->
   per-unit foreground logits (the paper's segment mask) and a deformable decoder whose queries predict class-agnostic
   actionness and iteratively refined `(center, width)` segments.
2. Zero-shot proposal classification ([`ZeetadForTemporalActionDetection`]): class prompts -> CLIP text encoder with
   adapters -> text embeddings; CLIP frame embeddings -> residual adapter -> unit embeddings; each proposal pools the
   cosine similarities of the units under its segment, weighted by foreground probability, and the classification
   head turns them into logits: an independent sigmoid per (query, prompt) pair with a scale and shift predicted from
   the query's state and a global bias (default), or a temperature-scaled softmax over the prompts.
"""

import math
from dataclasses import dataclass
from typing import Unpack

import torch
import torch.nn.functional as F
from peft import LoraConfig
from peft.functional import inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPVisionModelWithProjection,
    PreTrainedModel,
)
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.clip.modeling_clip import CLIPMLP
from transformers.utils import ModelOutput, TransformersKwargs, is_torchdynamo_compiling, logging
from transformers.utils.generic import can_return_tuple

from .configuration_zeetad import ZeetadConfig
from .loss_zeetad import ZeetadLoss
from .segment_utils import segment_cw_to_se


logger = logging.get_logger(__name__)

# Leaves tagged with this attribute are zero-initialised (adapter up-projections, LoRA B, last refinement layer),
# so that adapters start as the identity and refinement starts from the reference segments.
ZERO_INIT_ATTRIBUTE = "_zeetad_zero_init"
# Prior probability of the actionness / foreground classifiers at initialisation (RetinaNet-style bias init).
INITIAL_FOREGROUND_PROBABILITY = 0.01
# CLIP clamps its learnable temperature to at most 100; the same bound keeps the class logits from growing unboundedly.
MAX_LOGIT_SCALE = math.log(100.0)
# Parameters of these sub-modules hold pretrained CLIP weights and are never trained (text adapters excepted).
FROZEN_CLIP_MODULES = ("text_encoder", "text_projection", "vision_encoder")


@dataclass
class ZeetadModelOutput(ModelOutput):
    r"""
    Output of the dual-localization module [`ZeetadModel`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, num_queries, d_model)`):
            Query states after the last decoder layer.
        pred_segments (`torch.FloatTensor` of shape `(batch_size, num_queries, 2)`):
            Segments of the last decoder layer as normalised `(center, width)`, each in `(0, 1)`, relative to the
            valid (unpadded) length of each video.
        actionness_logits (`torch.FloatTensor` of shape `(batch_size, num_queries)`):
            Class-agnostic actionness logits of the last decoder layer (apply a sigmoid for probabilities).
        intermediate_segments (`torch.FloatTensor` of shape `(batch_size, decoder_layers, num_queries, 2)`):
            Segments predicted by every decoder layer (the last entry equals `pred_segments`).
        intermediate_actionness_logits (`torch.FloatTensor` of shape `(batch_size, decoder_layers, num_queries)`):
            Actionness logits of every decoder layer.
        intermediate_hidden_states (`torch.FloatTensor` of shape `(batch_size, decoder_layers, num_queries, d_model)`):
            Query states after every decoder layer (the last entry equals `last_hidden_state`).
        foreground_logits (`torch.FloatTensor` of shape `(batch_size, num_units)`):
            Per-unit foreground logits from the encoder; padded units hold `-inf`-like large negative values.
        encoder_last_hidden_state (`torch.FloatTensor` of shape `(batch_size, num_units, d_model)`):
            Encoder states of the finest temporal level; padded units are zero.
        feature_mask (`torch.BoolTensor` of shape `(batch_size, num_units)`):
            `True` for valid units.
        encoder_hidden_states (`tuple[torch.FloatTensor]`, *optional*, returned with `output_hidden_states=True`):
            The flattened multi-scale sequence `(batch_size, total_units, d_model)` (all pyramid levels, finest first)
            before the first encoder layer and after each one.
        encoder_attentions (`tuple[torch.FloatTensor]`, *optional*, returned with `output_attentions=True`):
            Per encoder layer, the deformable attention weights `(batch_size, total_units, num_heads, num_levels,
            num_points)` of every unit's sampling points.
        decoder_hidden_states (`tuple[torch.FloatTensor]`, *optional*, returned with `output_hidden_states=True`):
            The query states `(batch_size, num_queries, d_model)` before the first decoder layer and after each one.
        decoder_attentions (`tuple[torch.FloatTensor]`, *optional*, returned with `output_attentions=True`):
            Per decoder layer, the query self-attention weights `(batch_size, num_heads, num_queries, num_queries)`
            (computed by the `eager` attention implementation; `None` entries with `sdpa`).
        cross_attentions (`tuple[torch.FloatTensor]`, *optional*, returned with `output_attentions=True`):
            Per decoder layer, the deformable cross-attention weights `(batch_size, num_queries, num_heads,
            num_levels, num_points)`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pred_segments: torch.FloatTensor | None = None
    actionness_logits: torch.FloatTensor | None = None
    intermediate_segments: torch.FloatTensor | None = None
    intermediate_actionness_logits: torch.FloatTensor | None = None
    intermediate_hidden_states: torch.FloatTensor | None = None
    foreground_logits: torch.FloatTensor | None = None
    encoder_last_hidden_state: torch.FloatTensor | None = None
    feature_mask: torch.BoolTensor | None = None
    encoder_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    encoder_attentions: tuple[torch.FloatTensor, ...] | None = None
    decoder_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    decoder_attentions: tuple[torch.FloatTensor | None, ...] | None = None
    cross_attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class ZeetadTemporalActionDetectionOutput(ModelOutput):
    r"""
    Output of [`ZeetadForTemporalActionDetection`]. `logits`, `class_probabilities` and `pred_segments` are float32
    whatever the model's dtype (segment positions and the sigmoid head's logits need its precision); the other
    tensors are in the model's dtype.

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` are given):
            Weighted sum of the matching losses (see [`ZeetadLoss`]).
        loss_dict (`dict[str, torch.FloatTensor]`, *optional*, returned when `labels` are given):
            Unweighted loss components (`loss_actionness`, `loss_class`, `loss_l1`, `loss_giou`, `loss_foreground`,
            and the same query losses with suffix `_{i}` for intermediate decoder layers).
        logits (`torch.FloatTensor` of shape `(batch_size, num_queries, num_classes)`):
            Class logits of every query over the candidate class prompts passed with the batch: per-pair sigmoid
            logits `s_q * (cos - b_q) + b_0` (`config.classification_head="sigmoid"`) or logit-scaled cosine
            similarities whose softmax over the last dimension gives the class probabilities (`"softmax"`).
        class_probabilities (`torch.FloatTensor` of shape `(batch_size, num_queries, num_classes)`):
            Class probabilities in `[0, 1]` derived from `logits` by the model's head: independent per prompt (sigmoid
            head: a query can fit no candidate) or summing to 1 over the candidates (softmax head).
        actionness_logits (`torch.FloatTensor` of shape `(batch_size, num_queries)`):
            Class-agnostic actionness logits (sigmoid for probabilities).
        pred_segments (`torch.FloatTensor` of shape `(batch_size, num_queries, 2)`):
            Normalised `(center, width)` segments in `(0, 1)` relative to each video's valid length. Use
            [`~zeetad_hf.post_process_temporal_action_detection`] to get `(start, end)` in seconds.
        foreground_logits (`torch.FloatTensor` of shape `(batch_size, num_units)`):
            Per-unit foreground logits (the segment mask).
        feature_lengths (`torch.LongTensor` of shape `(batch_size,)`):
            Number of valid units of every video (needed to convert normalised segments to seconds).
        text_embeds (`torch.FloatTensor` of shape `(num_classes, clip_embedding_dim)`):
            L2-normalised class prompt embeddings (averaged over prompt templates).
        unit_embeds (`torch.FloatTensor` of shape `(batch_size, num_units, clip_embedding_dim)`):
            L2-normalised adapted CLIP frame embeddings of every unit.
        auxiliary_outputs (`list[dict]`, *optional*):
            For every intermediate decoder layer, a dict with `logits`, `actionness_logits` and `pred_segments`.
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, num_queries, d_model)`):
            Query states after the last decoder layer.
        encoder_last_hidden_state (`torch.FloatTensor` of shape `(batch_size, num_units, d_model)`):
            Encoder states of the finest temporal level.
        encoder_hidden_states, encoder_attentions, decoder_hidden_states, decoder_attentions, cross_attentions:
            The localization module's states and attention maps, with `output_hidden_states=True` /
            `output_attentions=True`; see [`ZeetadModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    loss_dict: dict | None = None
    logits: torch.FloatTensor | None = None
    class_probabilities: torch.FloatTensor | None = None
    actionness_logits: torch.FloatTensor | None = None
    pred_segments: torch.FloatTensor | None = None
    foreground_logits: torch.FloatTensor | None = None
    feature_lengths: torch.LongTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    unit_embeds: torch.FloatTensor | None = None
    auxiliary_outputs: list[dict] | None = None
    last_hidden_state: torch.FloatTensor | None = None
    encoder_last_hidden_state: torch.FloatTensor | None = None
    encoder_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    encoder_attentions: tuple[torch.FloatTensor, ...] | None = None
    decoder_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    decoder_attentions: tuple[torch.FloatTensor | None, ...] | None = None
    cross_attentions: tuple[torch.FloatTensor, ...] | None = None


# ----------------------------------------------------------------------------------------------------------------
# 1-D building blocks
# ----------------------------------------------------------------------------------------------------------------


def inverse_sigmoid(probabilities: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Logit of probabilities clamped away from 0 and 1."""
    probabilities = probabilities.clamp(min=eps, max=1 - eps)
    return torch.log(probabilities / (1 - probabilities))


def sinusoidal_position_embedding(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Sine/cosine embedding of normalised positions `(...,)` in `[0, 1]` -> `(..., dim)`."""
    half_dim = dim // 2
    frequencies = temperature ** (torch.arange(half_dim, device=positions.device, dtype=torch.float32) / half_dim)
    # ..., half_dim
    angles = positions.float()[..., None] * (2 * math.pi) / frequencies
    embedding = torch.cat((angles.sin(), angles.cos()), dim=-1)
    if dim % 2:
        embedding = F.pad(embedding, (0, 1))
    return embedding


def unit_centers(feature_lengths: torch.Tensor, num_units: int, stride: int = 1) -> torch.Tensor:
    """Normalised centres of the units of a level with the given stride: `(batch,)` -> `(batch, ceil(num_units))`.

    Unit `j` of level stride `s` sits on input unit `j * s`, whose centre is `(j * s + 0.5) / valid_length`.
    """
    indices = torch.arange(num_units, device=feature_lengths.device, dtype=torch.float32)
    return (indices[None, :] * stride + 0.5) / feature_lengths[:, None].float()


class ZeetadMLP(nn.Module):
    """A small multi-layer perceptron with ReLU between layers; optionally zero-initialised output layer."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int, zero_init_output: bool):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(dim_in, dim_out) for dim_in, dim_out in zip(dims[:-1], dims[1:]))
        if zero_init_output:
            setattr(self.layers[-1], ZERO_INIT_ATTRIBUTE, True)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for index, layer in enumerate(self.layers):
            hidden_states = layer(hidden_states)
            if index < len(self.layers) - 1:
                hidden_states = F.relu(hidden_states)
        return hidden_states


class ZeetadResidualAdapter(nn.Module):
    """Residual bottleneck adapter `x + up(act(down(x)))`; `up` starts at zero so the adapter starts as the identity."""

    def __init__(self, hidden_size: int, bottleneck_dim: int, activation: str = "gelu"):
        super().__init__()
        self.down_proj = nn.Linear(hidden_size, bottleneck_dim)
        self.activation = ACT2FN[activation]
        self.up_proj = nn.Linear(bottleneck_dim, hidden_size)
        setattr(self.up_proj, ZERO_INIT_ATTRIBUTE, True)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states + self.up_proj(self.activation(self.down_proj(hidden_states)))


class ZeetadDownsample(nn.Module):
    """Masked stride-2 convolution that builds the next (coarser) pyramid level; keeps `(features, mask)` together."""

    def __init__(self, d_model: int):
        super().__init__()
        self.conv = nn.Conv1d(d_model, d_model, kernel_size=3, stride=2, padding=1)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Zero padded units so the convolution sees the same zeros as the implicit border padding: outputs of valid
        # units then do not depend on how much padding follows them.
        features = features * mask[..., None]
        # batch, d_model, num_units -> batch, d_model, ceil(num_units / 2) -> batch, ceil(num_units / 2), d_model
        downsampled = self.conv(features.transpose(1, 2)).transpose(1, 2)
        downsampled_mask = mask[:, ::2]
        downsampled = F.relu(self.norm(downsampled)) * downsampled_mask[..., None]
        return downsampled, downsampled_mask


class ZeetadTemporalDeformableAttention(nn.Module):
    """Multi-scale deformable attention over 1-D time, in pure PyTorch.

    Every query attends to `num_points` sampled positions per head and level, placed around a reference: a point
    (encoder, offsets in units of the level) or a segment (decoder, offsets relative to half the segment width).
    Values are linearly interpolated between neighbouring units (`grid_sample` on a height-1 image, zero outside).
    The sampling offsets are direct parameters of this module so that its `_init_weights` branch runs (after its
    children) and sets the directional grid initialisation.
    """

    def __init__(self, d_model: int, num_heads: int, num_levels: int, num_points: int):
        super().__init__()
        self.d_model = d_model
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        self.head_dim = d_model // num_heads
        num_samples = num_heads * num_levels * num_points
        self.sampling_offsets_weight = nn.Parameter(torch.empty(num_samples, d_model))
        self.sampling_offsets_bias = nn.Parameter(torch.empty(num_samples))
        self.attention_weights = nn.Linear(d_model, num_samples)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)

    def initial_sampling_offsets(self) -> torch.Tensor:
        """Heads alternately look right and left, point `p` at distance `p + 1`: `(heads * levels * points,)`."""
        directions = torch.tensor([1.0 if head % 2 == 0 else -1.0 for head in range(self.num_heads)])
        distances = torch.arange(1, self.num_points + 1, dtype=torch.float32)
        # heads, levels, points
        offsets = directions[:, None, None] * distances[None, None, :].expand(1, self.num_levels, -1)
        return offsets.reshape(-1)

    def forward(
        self,
        hidden_states: torch.Tensor,
        references: torch.Tensor,
        value_states: torch.Tensor,
        value_mask: torch.Tensor,
        level_lengths: list[int],
        feature_lengths: torch.Tensor,
    ) -> torch.Tensor:
        """
        Args:
            hidden_states (`torch.FloatTensor` of shape `(batch_size, num_queries, d_model)`):
                Queries (with position embeddings added).
            references (`torch.FloatTensor` of shape `(batch_size, num_queries)` or `(batch_size, num_queries, 2)`):
                Normalised reference points (encoder) or `(center, width)` reference segments (decoder).
            value_states (`torch.FloatTensor` of shape `(batch_size, sum(level_lengths), d_model)`):
                The flattened multi-scale sequence, level 0 first.
            value_mask (`torch.BoolTensor` of shape `(batch_size, sum(level_lengths))`):
                `True` for valid units.
            level_lengths (`list[int]`):
                Padded length of every level.
            feature_lengths (`torch.LongTensor` of shape `(batch_size,)`):
                Valid length of the finest level (normalised positions are relative to it).

        Returns:
            `tuple[torch.FloatTensor, torch.FloatTensor]`: the output `(batch_size, num_queries, d_model)` and the
            attention weights `(batch_size, num_queries, num_heads, num_levels, num_points)` (float32, summing to 1
            over levels and points).
        """
        batch_size, num_queries, _ = hidden_states.shape
        value = self.value_proj(value_states) * value_mask[..., None]
        # batch, total_units, heads, head_dim
        value = value.view(batch_size, -1, self.num_heads, self.head_dim)

        offsets = F.linear(hidden_states, self.sampling_offsets_weight, self.sampling_offsets_bias)
        # batch, queries, heads, levels, points
        offsets = offsets.view(batch_size, num_queries, self.num_heads, self.num_levels, self.num_points)
        attention = self.attention_weights(hidden_states).view(
            batch_size, num_queries, self.num_heads, self.num_levels * self.num_points
        )
        # batch, queries, heads, levels, points
        attention = attention.softmax(-1).view(batch_size, num_queries, self.num_heads, self.num_levels, -1)

        # Sampling positions and the interpolation run in float32 whatever the model's dtype: in bfloat16 a position
        # on a 2,304-unit sequence would be off by up to 8 units.
        offsets, references = offsets.float(), references.float()
        valid_lengths = feature_lengths.float()[:, None, None, None, None]
        level_strides = torch.tensor(
            [2.0**level for level in range(self.num_levels)], dtype=torch.float32, device=hidden_states.device
        )[None, None, None, :, None]
        if references.dim() == 2:
            # Encoder: offsets are measured in units of each level.
            # batch, queries, 1, 1, 1 -> continuous index on every level
            reference_index = (references[:, :, None, None, None] * valid_lengths - 0.5) / level_strides
            sampling_index = reference_index + offsets
        else:
            # Decoder: offsets are fractions of half the segment width (one point step = width / (2 * points)).
            centers = references[:, :, None, None, None, 0]
            widths = references[:, :, None, None, None, 1]
            locations = centers + offsets / self.num_points * widths * 0.5
            sampling_index = (locations * valid_lengths - 0.5) / level_strides

        attention = attention.float()
        output = hidden_states.new_zeros(batch_size * self.num_heads, self.head_dim, num_queries, dtype=torch.float32)
        level_start = 0
        for level, level_length in enumerate(level_lengths):
            # batch, level_length, heads, head_dim -> batch * heads, head_dim, 1, level_length
            level_value = value[:, level_start : level_start + level_length].float()
            level_value = level_value.permute(0, 2, 3, 1).reshape(batch_size * self.num_heads, self.head_dim, 1, -1)
            level_start += level_length
            # batch, queries, heads, points -> batch * heads, queries, points
            level_index = sampling_index[:, :, :, level].permute(0, 2, 1, 3).flatten(0, 1)
            # Pixel p of a width-W image sits at (2p + 1) / W - 1 with align_corners=False; y = 0 is the only row.
            grid_x = (2 * level_index + 1) / level_length - 1
            grid = torch.stack((grid_x, torch.zeros_like(grid_x)), dim=-1)
            # batch * heads, head_dim, queries, points
            sampled = F.grid_sample(level_value, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            level_attention = attention[:, :, :, level].permute(0, 2, 1, 3).flatten(0, 1)[:, None]
            output = output + (sampled * level_attention).sum(-1)
        # batch * heads, head_dim, queries -> batch, queries, d_model
        output = output.view(batch_size, self.num_heads * self.head_dim, num_queries).transpose(1, 2)
        return self.output_proj(output.to(hidden_states.dtype)), attention


class ZeetadFeedForward(nn.Module):
    """Position-wise feed-forward block with residual connection and post-norm."""

    def __init__(self, config: ZeetadConfig, ffn_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(config.d_model, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, config.d_model)
        self.layer_norm = nn.LayerNorm(config.d_model)
        self.activation = ACT2FN[config.activation_function]
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        feed_forward = self.fc2(self.dropout(self.activation(self.fc1(hidden_states))))
        return self.layer_norm(hidden_states + self.dropout(feed_forward))


class ZeetadEncoderLayer(GradientCheckpointingLayer):
    """Deformable self-attention over all pyramid levels followed by a feed-forward block (post-norm)."""

    def __init__(self, config: ZeetadConfig):
        super().__init__()
        self.self_attn = ZeetadTemporalDeformableAttention(
            config.d_model, config.num_attention_heads, config.num_feature_levels, config.encoder_num_points
        )
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.feed_forward = ZeetadFeedForward(config, config.encoder_ffn_dim)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: torch.Tensor,
        reference_points: torch.Tensor,
        mask: torch.Tensor,
        level_lengths: list[int],
        feature_lengths: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the new hidden states and the deformable attention weights."""
        attended, attention_weights = self.self_attn(
            hidden_states + position_embeddings, reference_points, hidden_states, mask, level_lengths, feature_lengths
        )
        hidden_states = self.self_attn_layer_norm(hidden_states + self.dropout(attended))
        return self.feed_forward(hidden_states) * mask[..., None], attention_weights


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention, `(batch, heads, length, head_dim)` each -> output `(batch, length, heads, head_dim)`
    and weights `(batch, heads, length, length)` (the signature of transformers' attention interface)."""
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = F.dropout(weights.softmax(dim=-1), p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


class ZeetadQuerySelfAttention(nn.Module):
    """Self-attention among the decoder queries, through transformers' attention interface (`eager`, `sdpa`, ...).

    The parameters are those of `nn.MultiheadAttention` (`in_proj_weight`, `in_proj_bias`, `out_proj`), and the
    projections run in its `(queries, batch, d_model)` layout: with `sdpa` the outputs and gradients are bit-identical
    to it, so checkpoints and runs from before this module load and reproduce unchanged.
    """

    def __init__(self, config: ZeetadConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.d_model // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.in_proj_weight = nn.Parameter(torch.empty(3 * config.d_model, config.d_model))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * config.d_model))
        self.out_proj = nn.Linear(config.d_model, config.d_model)
        # nn.MultiheadAttention's constructor draws these from the global generator: the same draws keep every seeded
        # initialisation of the model as it was (`_init_weights` then sets the final values)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(
        self, hidden_states: torch.Tensor, position_embeddings: torch.Tensor, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Queries and keys carry the position embeddings, values do not; returns the output and the weights
        `(batch, heads, queries, queries)` (`None` where the attention function does not compute them)."""
        batch_size, num_queries, d_model = hidden_states.shape
        # queries, batch, d_model
        queries_and_keys = (hidden_states + position_embeddings).transpose(0, 1)
        values = hidden_states.transpose(0, 1)
        query_weight, key_weight, value_weight = self.in_proj_weight.chunk(3)
        query_bias, key_bias, value_bias = self.in_proj_bias.chunk(3)

        def split_heads(projected: torch.Tensor) -> torch.Tensor:
            # queries, batch, d_model -> batch * heads, queries, head_dim -> batch, heads, queries, head_dim
            projected = projected.reshape(num_queries, batch_size * self.num_heads, self.head_dim).transpose(0, 1)
            return projected.view(batch_size, self.num_heads, num_queries, self.head_dim)

        query = split_heads(F.linear(queries_and_keys, query_weight, query_bias))
        key = split_heads(F.linear(queries_and_keys, key_weight, key_bias))
        value = split_heads(F.linear(values, value_weight, value_bias))
        attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        # output: batch, queries, heads, head_dim
        output, weights = attention_interface(
            self,
            query,
            key,
            value,
            None,
            scaling=self.scaling,
            dropout=self.config.attention_dropout if self.training else 0.0,
            **kwargs,
        )
        # queries * batch, d_model in nn.MultiheadAttention's order
        output = output.permute(1, 0, 2, 3).reshape(num_queries * batch_size, d_model)
        output = self.out_proj(output).view(num_queries, batch_size, d_model).transpose(0, 1)
        return output, weights


class ZeetadDecoderLayer(GradientCheckpointingLayer):
    """Query self-attention, deformable cross-attention around each query's segment, feed-forward (post-norm)."""

    def __init__(self, config: ZeetadConfig):
        super().__init__()
        self.self_attn = ZeetadQuerySelfAttention(config)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.cross_attn = ZeetadTemporalDeformableAttention(
            config.d_model, config.num_attention_heads, config.num_feature_levels, config.decoder_num_points
        )
        self.cross_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.feed_forward = ZeetadFeedForward(config, config.decoder_ffn_dim)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        query_position_embeddings: torch.Tensor,
        reference_segments: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
        level_lengths: list[int],
        feature_lengths: torch.Tensor,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Returns the new query states, the query self-attention weights (`None` where the attention function does
        not compute them, e.g. `sdpa`) and the deformable cross-attention weights."""
        attended, self_attention_weights = self.self_attn(hidden_states, query_position_embeddings, **kwargs)
        hidden_states = self.self_attn_layer_norm(hidden_states + self.dropout(attended))
        attended, cross_attention_weights = self.cross_attn(
            hidden_states + query_position_embeddings,
            reference_segments,
            memory,
            memory_mask,
            level_lengths,
            feature_lengths,
        )
        hidden_states = self.cross_attn_layer_norm(hidden_states + self.dropout(attended))
        return self.feed_forward(hidden_states), self_attention_weights, cross_attention_weights


# ----------------------------------------------------------------------------------------------------------------
# CLIP text encoder with adapters
# ----------------------------------------------------------------------------------------------------------------


class ZeetadAdapterMLP(CLIPMLP):
    """CLIP's MLP followed by a residual bottleneck adapter (Houlsby-style, zero-initialised up-projection).

    It reuses the pretrained `fc1`/`fc2` modules under their original names, so CLIP checkpoints load unchanged.
    """

    def __init__(self, config: CLIPTextConfig, bottleneck_dim: int):
        super().__init__(config)
        self.adapter = ZeetadResidualAdapter(config.hidden_size, bottleneck_dim, activation=config.hidden_act)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.adapter(super().forward(hidden_states))


class ZeetadTextEncoder(CLIPTextModel):
    """A frozen `CLIPTextModel` carrying trainable adapters (bottleneck or LoRA through `peft`).

    Transformers initialises modules inside a nested pretrained model with that model's `_init_weights`, so this
    subclass is where zero-initialised adapter leaves (tagged with `ZERO_INIT_ATTRIBUTE`) are set to zero: the
    adapted encoder then computes exactly the pretrained function at initialisation.
    """

    def __init__(self, config: CLIPTextConfig, adapter_config: ZeetadConfig):
        super().__init__(config)
        self.adapter_type = adapter_config.text_adapter_type
        if self.adapter_type == "bottleneck":
            for layer in self.encoder.layers:
                adapted_mlp = ZeetadAdapterMLP(config, adapter_config.text_adapter_bottleneck_dim)
                adapted_mlp.fc1, adapted_mlp.fc2 = layer.mlp.fc1, layer.mlp.fc2
                layer.mlp = adapted_mlp
        elif self.adapter_type == "lora":
            inject_lora_adapters(self, adapter_config)
        adapter_names = self.adapter_parameter_names()
        for name, parameter in self.named_parameters():
            parameter.requires_grad_(name in adapter_names)

    def adapter_parameter_names(self) -> set[str]:
        """Names (as in `named_parameters()`) of the trainable adapter parameters (empty without adapters)."""
        return {
            name
            for name, _ in self.named_parameters()
            if ".adapter." in name or ".lora_A." in name or ".lora_B." in name
        }

    def adapter_parameters(self) -> list[nn.Parameter]:
        """The trainable adapter parameters (empty without adapters)."""
        names = self.adapter_parameter_names()
        return [parameter for name, parameter in self.named_parameters() if name in names]

    def _initialize_weights(self, module: nn.Module, is_custom_code: bool = False):
        # Always as transformers initialises code outside its own package (the outer model passes `False` down, see
        # `ZeetadPreTrainedModel.is_custom_code`): modules without parameters of their own (CLIPAttention, CLIPMLP) are
        # left alone, so every Linear here gets PreTrainedModel's normal(0, initializer_range), at construction and for
        # missing weights alike. The weights themselves always come from CLIP; keeping this scheme keeps the random
        # draws of a fresh model, and therefore every trained model's weights, as they were.
        super()._initialize_weights(module, is_custom_code=True)

    def _init_weights(self, module: nn.Module):
        if getattr(module, ZERO_INIT_ATTRIBUTE, False):
            init.zeros_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
            return
        super()._init_weights(module)

    def load_base_weights(self, clip_state_dict: dict[str, torch.Tensor]):
        """Copy the weights of a plain `CLIPTextModel` into this encoder, wherever adapters wrap its layers.

        LoRA wraps `q_proj` as `q_proj.base_layer`; bottleneck adapters keep every original name.
        """
        own_state = self.state_dict()
        for key, tensor in clip_state_dict.items():
            module_name, _, parameter_name = key.rpartition(".")
            candidates = (key, f"{module_name}.base_layer.{parameter_name}")
            target = next((candidate for candidate in candidates if candidate in own_state), None)
            if target is None:
                raise ValueError(f"The CLIP text weight `{key}` has no counterpart in the ZEETAD text encoder.")
            if own_state[target].shape != tensor.shape:
                raise ValueError(
                    f"Shape mismatch for CLIP text weight `{key}`: checkpoint {tuple(tensor.shape)}, "
                    f"model {tuple(own_state[target].shape)}."
                )
            with torch.no_grad():
                own_state[target].copy_(tensor)


def inject_lora_adapters(text_encoder: nn.Module, config: ZeetadConfig):
    """The one place where `peft` builds LoRA layers: inject them in place and tag `lora_B` for zero init."""
    lora_config = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
    )
    inject_adapter_in_model(lora_config, text_encoder)
    for module in text_encoder.modules():
        if isinstance(module, BaseTunerLayer):
            for lora_b in module.lora_B.values():
                setattr(lora_b, ZERO_INIT_ATTRIBUTE, True)


# ----------------------------------------------------------------------------------------------------------------
# Pretrained model base
# ----------------------------------------------------------------------------------------------------------------


class ZeetadPreTrainedModel(PreTrainedModel):
    config: ZeetadConfig
    base_model_prefix = "model"
    main_input_name = "input_features"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["ZeetadEncoderLayer", "ZeetadDecoderLayer"]
    _supports_sdpa = True

    @classmethod
    def is_custom_code(cls) -> bool:
        # Transformers treats models defined outside its package as custom code and then skips every module without
        # parameters of its own when it initialises weights (a guard for `_init_weights` that write in place). Ours use
        # `transformers.initialization` throughout, so nested CLIP towers get CLIP's own scheme (CLIPAttention,
        # CLIPMLP, projections) for missing weights, as their constructors give it.
        return False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        std = self.config.init_std
        if isinstance(module, ZeetadTemporalDeformableAttention):
            # Zero offsets + directional bias: every head starts sampling a fixed pattern around its reference.
            init.zeros_(module.sampling_offsets_weight)
            init.copy_(module.sampling_offsets_bias, module.initial_sampling_offsets())
            init.zeros_(module.attention_weights.weight)
            init.zeros_(module.attention_weights.bias)
            init.xavier_uniform_(module.value_proj.weight)
            init.zeros_(module.value_proj.bias)
            init.xavier_uniform_(module.output_proj.weight)
            init.zeros_(module.output_proj.bias)
        elif isinstance(module, nn.Linear):
            if getattr(module, ZERO_INIT_ATTRIBUTE, False):
                init.zeros_(module.weight)
            else:
                init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Conv1d):
            init.normal_(module.weight, mean=0.0, std=std)
            init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0)
        elif isinstance(module, ZeetadQuerySelfAttention):
            # nn.MultiheadAttention's initialisation (its out_proj is a Linear, initialised above)
            init.xavier_uniform_(module.in_proj_weight)
            init.zeros_(module.in_proj_bias)
        elif isinstance(module, ZeetadModel):
            init.normal_(module.level_embed, mean=0.0, std=std)
            prior_bias = -math.log((1 - INITIAL_FOREGROUND_PROBABILITY) / INITIAL_FOREGROUND_PROBABILITY)
            init.constant_(module.foreground_head.layers[-1].bias, prior_bias)
            for head in module.actionness_heads:
                init.constant_(head.bias, prior_bias)
            init.xavier_uniform_(module.reference_head.weight)
            init.zeros_(module.reference_head.bias)
        elif isinstance(module, ZeetadForTemporalActionDetection):
            init.constant_(module.logit_scale, self.config.logit_scale_init_value)
            if module.logit_bias is not None:
                init.constant_(module.logit_bias, self.config.logit_bias_init_value)


# ----------------------------------------------------------------------------------------------------------------
# Dual localization
# ----------------------------------------------------------------------------------------------------------------


class ZeetadModel(ZeetadPreTrainedModel):
    """The dual-localization module: class-agnostic segments + actionness per query, and a per-unit foreground mask."""

    def __init__(self, config: ZeetadConfig):
        super().__init__(config)
        input_dim = config.localization_feature_dim or config.clip_embedding_dim
        self.input_projection = nn.Linear(input_dim, config.d_model)
        self.input_layer_norm = nn.LayerNorm(config.d_model)
        self.downsample_layers = nn.ModuleList(
            ZeetadDownsample(config.d_model) for _ in range(config.num_feature_levels - 1)
        )
        self.level_embed = nn.Parameter(torch.empty(config.num_feature_levels, config.d_model))
        self.encoder_layers = nn.ModuleList(ZeetadEncoderLayer(config) for _ in range(config.encoder_layers))
        self.foreground_head = ZeetadMLP(config.d_model, config.d_model, 1, num_layers=2, zero_init_output=False)

        self.query_embeddings = nn.Embedding(config.num_queries, 2 * config.d_model)
        self.reference_head = nn.Linear(config.d_model, 2)
        self.decoder_layers = nn.ModuleList(ZeetadDecoderLayer(config) for _ in range(config.decoder_layers))
        self.segment_heads = nn.ModuleList(
            ZeetadMLP(config.d_model, config.d_model, 2, num_layers=3, zero_init_output=True)
            for _ in range(config.decoder_layers)
        )
        self.actionness_heads = nn.ModuleList(nn.Linear(config.d_model, 1) for _ in range(config.decoder_layers))
        self.post_init()

    def build_pyramid(
        self, input_features: torch.Tensor, feature_mask: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Project the features and build `num_feature_levels` levels of stride 1, 2, 4, ..."""
        features = self.input_layer_norm(self.input_projection(input_features)) * feature_mask[..., None]
        levels, masks = [features], [feature_mask]
        for downsample in self.downsample_layers:
            features, mask = downsample(levels[-1], masks[-1])
            levels.append(features)
            masks.append(mask)
        return levels, masks

    @can_return_tuple
    def forward(
        self,
        input_features: torch.FloatTensor,
        feature_attention_mask: torch.Tensor,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> ZeetadModelOutput:
        r"""
        Args:
            input_features (`torch.FloatTensor` of shape `(batch_size, num_units, feature_dim)`):
                Localization features of every temporal unit (validated by
                [`ZeetadForTemporalActionDetection.forward`]).
            feature_attention_mask (`torch.Tensor` of shape `(batch_size, num_units)`):
                1 for valid units, 0 for padding; valid units form a prefix of each row.
            output_attentions (`bool`, *optional*):
                Return the attention weights of every layer (defaults to `config.output_attentions`).
            output_hidden_states (`bool`, *optional*):
                Return the states before and after every layer (defaults to `config.output_hidden_states`).
        """
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        feature_mask = feature_attention_mask.bool()
        feature_lengths = feature_mask.sum(-1)
        batch_size = input_features.shape[0]
        # Padding may hold anything (NaN included): select zeros there, since multiplying by the mask keeps NaN.
        input_features = input_features.masked_fill(~feature_mask[..., None], 0.0)

        # 1. Multi-scale pyramid, flattened level after level, with positions relative to each video's valid length.
        levels, masks = self.build_pyramid(input_features, feature_mask)
        level_lengths = [level.shape[1] for level in levels]
        reference_points = torch.cat(
            [unit_centers(feature_lengths, length, stride=2**index) for index, length in enumerate(level_lengths)],
            dim=1,
        )
        position_embeddings = sinusoidal_position_embedding(reference_points, self.config.d_model).to(
            input_features.dtype
        )
        level_embeddings = torch.cat(
            [self.level_embed[index].expand(length, -1) for index, length in enumerate(level_lengths)], dim=0
        )
        position_embeddings = position_embeddings + level_embeddings[None]
        memory = torch.cat(levels, dim=1)
        memory_mask = torch.cat(masks, dim=1)

        # 2. Deformable encoder over all levels.
        encoder_hidden_states, encoder_attentions = [memory], []
        for encoder_layer in self.encoder_layers:
            memory, attention_weights = encoder_layer(
                memory, position_embeddings, reference_points, memory_mask, level_lengths, feature_lengths
            )
            encoder_hidden_states.append(memory)
            encoder_attentions.append(attention_weights)

        # 3. Foreground mask (segment mask) on the finest level.
        finest_memory = memory[:, : level_lengths[0]]
        foreground_logits = self.foreground_head(finest_memory).squeeze(-1)
        foreground_logits = foreground_logits.masked_fill(~feature_mask, torch.finfo(foreground_logits.dtype).min)

        # 4. Decoder: learnable queries with reference segments refined layer after layer.
        query_position, hidden_states = self.query_embeddings.weight.split(self.config.d_model, dim=-1)
        query_position = query_position[None].expand(batch_size, -1, -1)
        hidden_states = hidden_states[None].expand(batch_size, -1, -1)
        initial_query_states = hidden_states
        # segments stay in float32 whatever the model's dtype (see ZeetadTemporalDeformableAttention)
        reference_segments = self.reference_head(query_position).float().sigmoid()
        intermediate_segments, intermediate_actionness, intermediate_hidden_states = [], [], []
        decoder_attentions, cross_attentions = [], []
        for decoder_layer, segment_head, actionness_head in zip(
            self.decoder_layers, self.segment_heads, self.actionness_heads
        ):
            hidden_states, self_attention_weights, cross_attention_weights = decoder_layer(
                hidden_states,
                query_position,
                reference_segments,
                memory,
                memory_mask,
                level_lengths,
                feature_lengths,
                **kwargs,
            )
            decoder_attentions.append(self_attention_weights)
            cross_attentions.append(cross_attention_weights)
            segments = (inverse_sigmoid(reference_segments) + segment_head(hidden_states).float()).sigmoid()
            intermediate_segments.append(segments)
            intermediate_actionness.append(actionness_head(hidden_states).squeeze(-1))
            intermediate_hidden_states.append(hidden_states)
            # Each layer refines the previous layer's segments; gradients do not flow through the reference.
            reference_segments = segments.detach()

        return ZeetadModelOutput(
            last_hidden_state=hidden_states,
            pred_segments=intermediate_segments[-1],
            actionness_logits=intermediate_actionness[-1],
            intermediate_segments=torch.stack(intermediate_segments, dim=1),
            intermediate_actionness_logits=torch.stack(intermediate_actionness, dim=1),
            intermediate_hidden_states=torch.stack(intermediate_hidden_states, dim=1),
            foreground_logits=foreground_logits,
            encoder_last_hidden_state=finest_memory,
            feature_mask=feature_mask,
            encoder_hidden_states=tuple(encoder_hidden_states) if output_hidden_states else None,
            encoder_attentions=tuple(encoder_attentions) if output_attentions else None,
            # the initial query states and every decoder layer's output
            decoder_hidden_states=(initial_query_states, *intermediate_hidden_states)
            if output_hidden_states
            else None,
            decoder_attentions=tuple(decoder_attentions) if output_attentions else None,
            cross_attentions=tuple(cross_attentions) if output_attentions else None,
        )


# ----------------------------------------------------------------------------------------------------------------
# Zero-shot temporal action detection
# ----------------------------------------------------------------------------------------------------------------


def segment_unit_weights(segments: torch.Tensor, feature_mask: torch.Tensor) -> torch.Tensor:
    """Fraction of every unit covered by every segment: `(batch, queries, 2)` `(center, width)` -> `(batch, queries, units)`.

    Unit `t` of a video with `V` valid units spans `[t / V, (t + 1) / V]`; any segment of positive width inside the
    video covers part of at least one unit, so short proposals still pool something.
    """
    feature_lengths = feature_mask.sum(-1).to(segments.dtype)
    start_end = segment_cw_to_se(segments).clamp(0.0, 1.0)
    num_units = feature_mask.shape[1]
    unit_starts = (
        torch.arange(num_units, device=segments.device, dtype=segments.dtype)[None, :] / feature_lengths[:, None]
    )
    unit_ends = unit_starts + 1.0 / feature_lengths[:, None]
    # batch, queries, units
    overlap = torch.minimum(start_end[..., 1:2], unit_ends[:, None]) - torch.maximum(
        start_end[..., 0:1], unit_starts[:, None]
    )
    coverage = overlap.clamp(min=0) * feature_lengths[:, None, None]
    return coverage * feature_mask[:, None, :]


def load_clip_tower(
    tower_class: type[PreTrainedModel], pretrained_model_name_or_path: str, **kwargs
) -> PreTrainedModel:
    """Load one CLIP tower from a full CLIP checkpoint; every weight of the tower must be present.

    The other tower's weights are expected leftovers, so transformers' load report (which would list them all as
    unexpected) is silenced and missing weights are checked here instead.
    """
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        tower, loading_info = tower_class.from_pretrained(
            pretrained_model_name_or_path, output_loading_info=True, **kwargs
        )
    finally:
        logging.set_verbosity(verbosity)
    if loading_info["missing_keys"]:
        raise ValueError(
            f"{pretrained_model_name_or_path!r} is not a complete CLIP checkpoint for {tower_class.__name__}: "
            f"missing {sorted(loading_info['missing_keys'])[:5]}."
        )
    return tower


class ZeetadForTemporalActionDetection(ZeetadPreTrainedModel):
    """ZEETAD: dual localization + zero-shot proposal classification against free-text class prompts.

    Nothing in the weights depends on the class list: the classes are whatever prompts are passed with the batch.
    """

    def __init__(self, config: ZeetadConfig):
        super().__init__(config)
        self.model = ZeetadModel(config)
        self.text_encoder = ZeetadTextEncoder(config.text_config, config)
        self.text_projection = nn.Linear(config.text_config.hidden_size, config.clip_embedding_dim, bias=False)
        if config.vision_config is not None:
            self.vision_encoder = CLIPVisionModelWithProjection(config.vision_config)
        else:
            self.vision_encoder = None
        self.semantic_adapter = ZeetadResidualAdapter(config.clip_embedding_dim, config.semantic_adapter_dim)
        self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init_value))
        if config.classification_head == "sigmoid":
            self.logit_bias = nn.Parameter(torch.tensor(config.logit_bias_init_value))
            # Per decoder layer, (scale, shift) of every query from its state; zero-initialised, so that at first
            # every query uses the global scale and no shift.
            self.query_scale_shift = nn.ModuleList(nn.Linear(config.d_model, 2) for _ in range(config.decoder_layers))
            for layer in self.query_scale_shift:
                setattr(layer, ZERO_INIT_ATTRIBUTE, True)
        else:
            self.logit_bias = None
            self.query_scale_shift = None
        self.criterion = ZeetadLoss(config)
        self.post_init()
        self.freeze_pretrained_weights()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        r"""
        [`~transformers.PreTrainedModel.from_pretrained`], then [`freeze_pretrained_weights`]: transformers wraps
        every loaded weight in a new parameter that requires gradients, which would silently unfreeze CLIP.
        """
        loaded = super().from_pretrained(*args, **kwargs)
        # `output_loading_info=True` returns (model, loading_info)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model.freeze_pretrained_weights()
        return loaded

    def is_trainable_parameter(self, name: str) -> bool:
        """Whether the parameter `name` (as in `named_parameters()`) is trained: everything except the pretrained
        CLIP weights (text encoder, text projection, vision tower); the text encoder's adapters are trained."""
        module_name = name.split(".", 1)[0]
        if module_name == "text_encoder":
            return name.removeprefix("text_encoder.") in self.text_encoder.adapter_parameter_names()
        return module_name not in FROZEN_CLIP_MODULES

    def named_trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """`(name, parameter)` of every parameter [`is_trainable_parameter`] selects: what an optimizer should get."""
        return [(name, parameter) for name, parameter in self.named_parameters() if self.is_trainable_parameter(name)]

    def freeze_pretrained_weights(self) -> None:
        """Set `requires_grad` of every parameter from its role ([`is_trainable_parameter`]).

        Called at the end of `__init__` and by `from_pretrained`; call it again after anything that replaces
        parameters (e.g. `load_state_dict(..., assign=True)`).
        """
        for name, parameter in self.named_parameters():
            parameter.requires_grad_(self.is_trainable_parameter(name))

    @classmethod
    def from_clip(
        cls,
        pretrained_model_name_or_path: str,
        *,
        load_vision: bool = False,
        revision: str = "main",
        token: str | bool | None = None,
        cache_dir: str | None = None,
        local_files_only: bool = False,
        **config_overrides,
    ) -> "ZeetadForTemporalActionDetection":
        r"""
        Build a freshly initialised ZEETAD model whose text encoder (and, if asked, vision tower) carries pretrained
        CLIP weights, e.g. `"openai/clip-vit-base-patch16"` or a local CLIP folder.

        Args:
            pretrained_model_name_or_path (`str`):
                Hub id or local folder of a `CLIPModel` (or `CLIPTextModelWithProjection`) checkpoint.
            load_vision (`bool`, *optional*, defaults to `False`):
                Also load the CLIP vision tower (needed to embed raw frames).
            revision, token, cache_dir, local_files_only:
                Forwarded to `from_pretrained`.
            config_overrides:
                Any [`ZeetadConfig`] field (e.g. `localization_feature_dim=2048`, `text_adapter_type="lora"`).
        """
        hub_kwargs = {
            "revision": revision,
            "token": token,
            "cache_dir": cache_dir,
            "local_files_only": local_files_only,
            "dtype": torch.float32,
        }
        clip_text = load_clip_tower(CLIPTextModelWithProjection, pretrained_model_name_or_path, **hub_kwargs)
        clip_vision = None
        if load_vision:
            clip_vision = load_clip_tower(CLIPVisionModelWithProjection, pretrained_model_name_or_path, **hub_kwargs)
        for reserved in ("text_config", "vision_config"):
            if reserved in config_overrides:
                raise ValueError(
                    f"`{reserved}` comes from the CLIP checkpoint and cannot be overridden in `from_clip`."
                )
        config = ZeetadConfig(
            text_config=clip_text.config,
            vision_config=clip_vision.config if clip_vision is not None else None,
            **config_overrides,
        )
        model = cls(config)
        model.text_encoder.load_base_weights(clip_text.text_model.state_dict())
        model.text_projection.load_state_dict(clip_text.text_projection.state_dict())
        if clip_vision is not None:
            model.vision_encoder.load_state_dict(clip_vision.state_dict())
        return model

    @can_return_tuple
    def get_text_features(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPooling:
        r"""
        Encode class prompts into L2-normalised CLIP embeddings, averaging over prompt templates.

        Args:
            input_ids (`torch.LongTensor` of shape `(num_classes, sequence_length)` or `(num_classes, num_templates, sequence_length)`):
                Tokenised prompts; with a template dimension the normalised embeddings of a class's templates are
                averaged (CLIP prompt ensembling).
            attention_mask (`torch.Tensor`, *optional*, same shape as `input_ids`):
                1 for real tokens, 0 for padding.
            kwargs:
                `output_hidden_states`, `output_attentions`, `return_dict`, passed to the CLIP text encoder.

        Returns:
            [`~transformers.modeling_outputs.BaseModelOutputWithPooling`], as transformers' CLIP models return it:
            `pooler_output` of shape `(num_classes, clip_embedding_dim)` holds the class embeddings (projected,
            normalised, averaged over templates, normalised again); `last_hidden_state` of shape
            `(num_classes * num_templates, sequence_length, hidden_size)`, `hidden_states` and `attentions` are the
            text encoder's.
        """
        if input_ids.dim() not in (2, 3) or input_ids.shape[0] == 0:
            raise ValueError(
                "`input_ids` must have shape (num_classes, sequence_length) or (num_classes, num_templates, "
                f"sequence_length) with at least one class, got {tuple(input_ids.shape)}."
            )
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"`attention_mask` shape {tuple(attention_mask.shape)} does not match `input_ids` shape "
                f"{tuple(input_ids.shape)}."
            )
        num_classes = input_ids.shape[0]
        sequence_length = input_ids.shape[-1]
        # num_classes * num_templates, sequence_length
        flat_ids = input_ids.reshape(-1, sequence_length)
        flat_mask = attention_mask.reshape(-1, sequence_length) if attention_mask is not None else None
        text_outputs = self.text_encoder(input_ids=flat_ids, attention_mask=flat_mask, return_dict=True, **kwargs)
        embeddings = F.normalize(self.text_projection(text_outputs.pooler_output), dim=-1)
        # num_classes, num_templates, clip_embedding_dim
        embeddings = embeddings.view(num_classes, -1, embeddings.shape[-1])
        return BaseModelOutputWithPooling(
            last_hidden_state=text_outputs.last_hidden_state,
            pooler_output=F.normalize(embeddings.mean(dim=1), dim=-1),
            hidden_states=text_outputs.hidden_states,
            attentions=text_outputs.attentions,
        )

    def get_input_embeddings(self) -> nn.Module:
        """The token embeddings of the CLIP text encoder (the model's only token input)."""
        return self.text_encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.text_encoder.set_input_embeddings(value)

    def get_clip_features(self, pixel_values: torch.FloatTensor) -> torch.Tensor:
        r"""
        Embed preprocessed frames with the frozen CLIP vision tower.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(num_frames, num_channels, height, width)`):
                Frames normalised as CLIP expects.

        Returns:
            `torch.FloatTensor` of shape `(num_frames, clip_embedding_dim)`: projected (not yet normalised) frame
            embeddings, the `clip_features` of one video.
        """
        if self.vision_encoder is None:
            raise ValueError(
                "This model has no CLIP vision tower (`config.vision_config` is None): build it with "
                "`ZeetadForTemporalActionDetection.from_clip(..., load_vision=True)` or pass `clip_features`."
            )
        return self.vision_encoder(pixel_values=pixel_values).image_embeds

    def merge_text_adapters(self) -> None:
        """Fold LoRA adapters into the frozen text weights for export; afterwards `config.text_adapter_type` is None.

        Bottleneck adapters are non-linear and cannot be folded into the linear weights; they are plain modules that
        `save_pretrained` already exports, so merging them raises a `ValueError`.
        """
        adapter_type = self.config.text_adapter_type
        if adapter_type is None:
            return
        if adapter_type != "lora":
            raise ValueError(
                f"`text_adapter_type={adapter_type!r}` adapters are non-linear and cannot be merged into the CLIP "
                "weights; save the model as it is (the adapters are part of `model.safetensors`)."
            )
        for name, module in list(self.text_encoder.named_modules()):
            if isinstance(module, BaseTunerLayer):
                module.merge()
                parent_name, _, child_name = name.rpartition(".")
                setattr(self.text_encoder.get_submodule(parent_name), child_name, module.get_base_layer())
        self.text_encoder.adapter_type = None
        self.config.text_adapter_type = None

    def _validate_inputs(
        self,
        input_features: torch.Tensor,
        feature_attention_mask: torch.Tensor | None,
        clip_features: torch.Tensor | None,
    ) -> torch.Tensor:
        """Check shapes and values of the video inputs; returns the feature mask as a bool tensor."""
        expected_dim = self.config.localization_feature_dim or self.config.clip_embedding_dim
        if input_features.dim() != 3 or input_features.shape[-1] != expected_dim:
            raise ValueError(
                f"`input_features` must have shape (batch_size, num_units, {expected_dim}), "
                f"got {tuple(input_features.shape)}."
            )
        batch_size, num_units, _ = input_features.shape
        if num_units == 0:
            raise ValueError("`input_features` has no temporal units (num_units == 0).")
        if feature_attention_mask is None:
            feature_mask = torch.ones(batch_size, num_units, dtype=torch.bool, device=input_features.device)
        else:
            if tuple(feature_attention_mask.shape) != (batch_size, num_units):
                raise ValueError(
                    f"`feature_attention_mask` must have shape {(batch_size, num_units)} to match `input_features`, "
                    f"got {tuple(feature_attention_mask.shape)}."
                )
            feature_mask = feature_attention_mask.bool()
        if clip_features is not None:
            expected = (batch_size, num_units, self.config.clip_embedding_dim)
            if tuple(clip_features.shape) != expected:
                raise ValueError(f"`clip_features` must have shape {expected}, got {tuple(clip_features.shape)}.")
        elif self.config.localization_feature_dim is not None:
            raise ValueError(
                f"`clip_features` are required: `input_features` are {self.config.localization_feature_dim}-d "
                "localization features, and classification needs CLIP frame embeddings."
            )
        if is_torchdynamo_compiling():
            # torch.export / torch.compile trace a graph: the value checks below would be data-dependent branches
            return feature_mask
        if feature_attention_mask is not None:
            lengths = feature_mask.sum(-1)
            if (lengths == 0).any():
                empty = torch.nonzero(lengths == 0).flatten().tolist()
                raise ValueError(f"`feature_attention_mask` has no valid unit for video(s) {empty}.")
            positions = torch.arange(num_units, device=feature_mask.device)[None]
            if not torch.equal(feature_mask, positions < lengths[:, None]):
                raise ValueError(
                    "`feature_attention_mask` must mark valid units as a prefix of each row (pad on the right)."
                )
        if not torch.isfinite(input_features[feature_mask]).all():
            raise ValueError("`input_features` contains NaN or infinite values in valid units.")
        if clip_features is not None and not torch.isfinite(clip_features[feature_mask]).all():
            raise ValueError("`clip_features` contains NaN or infinite values in valid units.")
        return feature_mask

    def classify_segments(
        self,
        segments: torch.Tensor,
        query_states: torch.Tensor,
        unit_similarity: torch.Tensor,
        unit_weights: torch.Tensor,
        feature_mask: torch.Tensor,
        layer: int,
    ) -> torch.Tensor:
        r"""
        Class logits of one decoder layer's proposals: the unit/prompt cosine similarities pooled under each segment
        (weighted by how much of each unit it covers times `unit_weights`), then the classification head.

        Args:
            segments (`torch.FloatTensor` of shape `(batch_size, num_queries, 2)`):
                Normalised `(center, width)` proposals.
            query_states (`torch.FloatTensor` of shape `(batch_size, num_queries, d_model)`):
                The layer's query states (the sigmoid head predicts each query's scale and shift from them).
            unit_similarity (`torch.FloatTensor` of shape `(batch_size, num_units, num_classes)`):
                Cosine similarity of every unit's embedding with every prompt.
            unit_weights (`torch.FloatTensor` of shape `(batch_size, num_units)`):
                Pooling weight of every unit (foreground probability, 0 on padding).
            feature_mask (`torch.BoolTensor` of shape `(batch_size, num_units)`):
                `True` for valid units.
            layer (`int`):
                Index of the decoder layer.

        Returns:
            `torch.FloatTensor` of shape `(batch_size, num_queries, num_classes)`: logits of the configured head.
        """
        if not self.config.classification_segment_gradient:
            segments = segments.detach()
        # pooling and logits in float32 whatever the model's dtype: the segments are float32, and bfloat16 logits
        # near the sigmoid head's bias (-10) would be 0.06 apart
        weights = segment_unit_weights(segments, feature_mask) * unit_weights[:, None, :].float()
        # batch, queries, classes: weighted mean cosine in [-1, 1]
        pooled = torch.einsum("bqt,btc->bqc", weights, unit_similarity.float())
        pooled = pooled / weights.sum(-1, keepdim=True).clamp(min=1e-6)
        scale = self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
        if self.config.classification_head == "softmax":
            return scale * pooled
        # batch, queries, 2 -> a positive scale (1 at initialisation) and a shift per query
        scale_shift = self.query_scale_shift[layer](query_states)
        query_scale = scale * (F.elu(scale_shift[..., 0:1]) + 1)
        query_shift = scale_shift[..., 1:2]
        return query_scale * (pooled - query_shift) + self.logit_bias

    def class_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities of `logits` `(..., num_classes)`: a sigmoid per prompt or a softmax over the prompts."""
        if self.config.classification_head == "softmax":
            return logits.softmax(-1)
        return logits.sigmoid()

    @can_return_tuple
    def forward(
        self,
        input_features: torch.FloatTensor,
        feature_attention_mask: torch.Tensor | None = None,
        clip_features: torch.FloatTensor | None = None,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        text_embeds: torch.FloatTensor | None = None,
        labels: list[dict] | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> ZeetadTemporalActionDetectionOutput:
        r"""
        Args:
            input_features (`torch.FloatTensor` of shape `(batch_size, num_units, feature_dim)`):
                Localization features per temporal unit (`feature_dim = config.localization_feature_dim`, or the CLIP
                embedding dimension when that is None, in which case they are also the CLIP frame embeddings).
            feature_attention_mask (`torch.Tensor` of shape `(batch_size, num_units)`, *optional*):
                1 for valid units, 0 for right padding. Defaults to all valid.
            clip_features (`torch.FloatTensor` of shape `(batch_size, num_units, clip_embedding_dim)`, *optional*):
                CLIP frame embeddings per unit; required when `config.localization_feature_dim` is set.
            input_ids (`torch.LongTensor` of shape `(num_classes, seq_len)` or `(num_classes, num_templates, seq_len)`, *optional*):
                Tokenised class prompts shared by the batch (see [`~ZeetadForTemporalActionDetection.get_text_features`]).
            attention_mask (`torch.Tensor`, *optional*, same shape as `input_ids`):
                Prompt padding mask.
            text_embeds (`torch.FloatTensor` of shape `(num_classes, clip_embedding_dim)`, *optional*):
                Pre-computed class embeddings instead of `input_ids` (normalised inside).
            labels (`list[dict]`, *optional*):
                One dict per video: `"class_labels"` (`torch.LongTensor` of shape `(num_actions,)`, indices into the
                prompts) and `"segments"` (`torch.FloatTensor` of shape `(num_actions, 2)`, normalised
                `(center, width)` relative to the video's valid length: unit `t` spans `[t / V, (t + 1) / V]`).
            output_attentions (`bool`, *optional*):
                Return the attention weights of every localization layer (`encoder_attentions`,
                `decoder_attentions`, `cross_attentions`); defaults to `config.output_attentions`.
            output_hidden_states (`bool`, *optional*):
                Return the states around every localization layer (`encoder_hidden_states`,
                `decoder_hidden_states`); defaults to `config.output_hidden_states`.
            return_dict (`bool`, *optional*):
                Return a [`ZeetadTemporalActionDetectionOutput`] (default) or a tuple.
        """
        feature_mask = self._validate_inputs(input_features, feature_attention_mask, clip_features)
        if (input_ids is None) == (text_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` (class prompts) or `text_embeds`.")
        if input_ids is not None:
            text_embeds = self.get_text_features(input_ids, attention_mask).pooler_output
        elif (
            text_embeds.dim() != 2
            or text_embeds.shape[0] == 0
            or text_embeds.shape[1] != self.config.clip_embedding_dim
        ):
            raise ValueError(
                f"`text_embeds` must have shape (num_classes >= 1, {self.config.clip_embedding_dim}), "
                f"got {tuple(text_embeds.shape)}."
            )
        else:
            text_embeds = F.normalize(text_embeds, dim=-1)

        # 1. Dual localization.
        localization = self.model(
            input_features,
            feature_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            **kwargs,
        )

        # 2. Per-unit semantics: adapted CLIP frame embeddings compared with every class prompt.
        semantic_features = clip_features if clip_features is not None else input_features
        # padding may hold NaN, which multiplying by the mask would keep
        semantic_features = semantic_features.masked_fill(~feature_mask[..., None], 0.0)
        # padding is zero after the adapter too, and F.normalize's eps (1e-12) is 0 in float16: 0 / 0 there
        unit_embeds = F.normalize(self.semantic_adapter(semantic_features), dim=-1)
        unit_embeds = unit_embeds.masked_fill(~feature_mask[..., None], 0.0)
        # batch, units, classes
        unit_similarity = torch.einsum("btd,cd->btc", unit_embeds, text_embeds.to(unit_embeds.dtype))
        if self.config.use_foreground_mask:
            foreground_logits = localization.foreground_logits
            if not self.config.classification_segment_gradient:
                foreground_logits = foreground_logits.detach()
            unit_weights = foreground_logits.sigmoid() * feature_mask
        else:
            unit_weights = feature_mask.to(unit_embeds.dtype)

        # 3. Zero-shot classification of every decoder layer's proposals.
        layer_logits = [
            self.classify_segments(
                localization.intermediate_segments[:, layer],
                localization.intermediate_hidden_states[:, layer],
                unit_similarity,
                unit_weights,
                feature_mask,
                layer,
            )
            for layer in range(self.config.decoder_layers)
        ]
        auxiliary_outputs = [
            {
                "logits": layer_logits[layer],
                "actionness_logits": localization.intermediate_actionness_logits[:, layer],
                "pred_segments": localization.intermediate_segments[:, layer],
            }
            for layer in range(self.config.decoder_layers - 1)
        ]

        loss, loss_dict = None, None
        if labels is not None:
            loss, loss_dict = self.criterion(
                class_logits=layer_logits[-1],
                actionness_logits=localization.actionness_logits,
                pred_segments=localization.pred_segments,
                foreground_logits=localization.foreground_logits,
                feature_mask=feature_mask,
                labels=labels,
                auxiliary_outputs=auxiliary_outputs,
            )

        return ZeetadTemporalActionDetectionOutput(
            loss=loss,
            loss_dict=loss_dict,
            logits=layer_logits[-1],
            class_probabilities=self.class_probabilities(layer_logits[-1]),
            actionness_logits=localization.actionness_logits,
            pred_segments=localization.pred_segments,
            foreground_logits=localization.foreground_logits,
            feature_lengths=feature_mask.sum(-1),
            text_embeds=text_embeds,
            unit_embeds=unit_embeds,
            auxiliary_outputs=auxiliary_outputs or None,
            last_hidden_state=localization.last_hidden_state,
            encoder_last_hidden_state=localization.encoder_last_hidden_state,
            encoder_hidden_states=localization.encoder_hidden_states,
            encoder_attentions=localization.encoder_attentions,
            decoder_hidden_states=localization.decoder_hidden_states,
            decoder_attentions=localization.decoder_attentions,
            cross_attentions=localization.cross_attentions,
        )


__all__ = [
    "ZeetadForTemporalActionDetection",
    "ZeetadModel",
    "ZeetadModelOutput",
    "ZeetadPreTrainedModel",
    "ZeetadTemporalActionDetectionOutput",
    "ZeetadTextEncoder",
]
