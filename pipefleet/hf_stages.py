"""Every use of ``transformers``' private pipeline API by pipefleet, in one place.

``Pipeline.__call__`` runs ``preprocess`` -> ``forward`` -> ``postprocess`` over inputs in file
order, with one set of parameters. pipefleet calls the very same stage methods itself (so outputs
equal the pipeline's) from its engine (:mod:`pipefleet.engine`); what that needs beyond the public
API, the parameter split of ``_sanitize_parameters``, the collation and unbatching helpers, the
chunked-pipeline type, a few tokenizer and model internals, lives here. An upgrade of transformers
means reading this module (and the ported pipelines of :mod:`pipefleet.ported`, which subclass
``Pipeline`` and so define its private methods themselves).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import Pipeline

# Where a model input keeps its length: tokens, audio samples or audio frames, in that order.
_LENGTH_KEYS = ("input_ids", "input_values", "input_features")


def sanitize(pipe: "Pipeline", params: Mapping[str, Any]) -> tuple[dict, dict, dict]:
    """The preprocess, forward and postprocess parameters of ``params``, over the pipeline's own, as
    ``__call__`` merges them. Raises whatever the pipeline raises for a value it rejects."""
    # A deep copy: some pipelines write into the dicts they are given (tokenize_kwargs, generate_kwargs).
    pre, fwd, post = pipe._sanitize_parameters(**copy.deepcopy(dict(params)))
    return (
        {**pipe._preprocess_params, **pre},
        {**pipe._forward_params, **fwd},
        {**pipe._postprocess_params, **post},
    )


def is_chunked(pipe: "Pipeline") -> bool:
    """Whether one input may become several model inputs (context windows, audio chunks, label pairs)."""
    from transformers.pipelines.base import ChunkPipeline

    return isinstance(pipe, ChunkPipeline)


def preprocess(pipe: "Pipeline", value: Any, params: Mapping[str, Any]) -> list[Any]:
    """The pipeline's model inputs for one input: one, or a chunked pipeline's several."""
    prepared = pipe.preprocess(value, **_fresh(params))
    return list(prepared) if is_chunked(pipe) else [prepared]


def forward(pipe: "Pipeline", features: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> list[Any]:
    """One forward pass over ``features``, padded as ``pipeline()`` pads them; one output per feature."""
    from transformers.pipelines.base import no_collate_fn, pad_collate_fn
    from transformers.pipelines.pt_utils import PipelineIterator

    if len(features) == 1:
        batch = no_collate_fn(list(features))
    else:
        extractor = pipe.feature_extractor if pipe.feature_extractor is not None else pipe.image_processor
        batch = pad_collate_fn(pipe.tokenizer, extractor)(list(features))
    outputs = pipe.forward(batch, **_fresh(params))
    # PipelineIterator's unbatching is what pipeline() uses; reusing it keeps outputs identical.
    unbatched = list(PipelineIterator([outputs], lambda x: x, {}, loader_batch_size=len(features)))
    if len(unbatched) != len(features):
        raise RuntimeError(f"forward returned {len(unbatched)} outputs for a batch of {len(features)}")
    return unbatched


def postprocess(pipe: "Pipeline", outputs: list[Any], params: Mapping[str, Any]) -> Any:
    """The pipeline's answer for one input from its model outputs (all chunks for a chunked pipeline)."""
    return pipe.postprocess(outputs if is_chunked(pipe) else outputs[0], **_fresh(params))


def feature_length(feature: Any) -> int:
    """A model input's length: its tokens, audio samples or audio frames; 0 for other inputs."""
    return _last_dim(feature, _LENGTH_KEYS)


def token_count(feature: Any) -> int:
    """A model input's tokens (what the padded-token cap counts); 0 for inputs without tokens."""
    return _last_dim(feature, _LENGTH_KEYS[:1])


def _last_dim(feature: Any, names: Sequence[str]) -> int:
    if not hasattr(feature, "get"):
        return 0
    for name in names:
        value = feature.get(name)
        if hasattr(value, "shape"):
            return int(value.shape[-1])
        if isinstance(value, list):  # a handler's own features: token ids as a list
            return len(value)
    return 0


def _fresh(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` as keyword arguments whose mutable values are copies: a stage that writes into a
    ``generate_kwargs`` must not change the next row's."""
    return {name: copy.deepcopy(value) if isinstance(value, (dict, list)) else value for name, value in params.items()}


def frames_of_samples(model: Any) -> Any:
    """A CTC model's function from audio samples to output frames."""
    return model._get_feat_extract_output_lengths


def has_translation_inputs(tokenizer: Any) -> bool:
    """Whether a tokenizer marks the languages of a translation itself (mBART, M2M100, NLLB)."""
    return hasattr(tokenizer, "_build_translation_inputs")


def translation_inputs(tokenizer: Any, text: str, **kwargs: Any) -> Any:
    """A multilingual tokenizer's inputs for ``text``, with the marks of ``src_lang`` and ``tgt_lang``."""
    return tokenizer._build_translation_inputs(text, **kwargs)


def generate_kwargs(pipe: "Pipeline", kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``generate()``'s arguments as the pipeline completes them (its generation config, assistant model)."""
    return pipe._prepare_generate_kwargs(dict(kwargs))
