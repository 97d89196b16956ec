"""Summarization and translation with sequence-to-sequence models, as transformers 4.57 did them.

The generation defaults follow 4.57 exactly, because they decide what a model writes:
``max_new_tokens=256`` and ``num_beams=4``, except that a model whose generation config sets
``max_length`` keeps it instead of ``max_new_tokens``; then the model config's
``task_specific_params`` for the task (T5's ``summarize: `` prefix, BART-CNN's lengths);
then the call's own generation parameters, which win.
"""

from __future__ import annotations

from typing import Any

from transformers.pipelines.base import Pipeline

from pipefleet import hf_stages
from pipefleet.ported import given

_PIPELINE_DEFAULTS = {"max_new_tokens": 256, "num_beams": 4}
_GLOBAL_MAX_LENGTH = 20  # GenerationConfig's max_length when nothing sets it (4.57)


class Seq2SeqPipeline(Pipeline):
    """Text in, generated text out: ``[{"<return_name>_text": ...}]``, one record per returned sequence."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True
    return_name = "generated"
    default_task = "text2text-generation"  # the 4.57 task name, the key of its task_specific_params

    def __init__(self, *args: Any, legacy_task: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The 4.57 task name (summarization, translation_en_to_fr) picks the task_specific_params.
        self.legacy_task = self._task_params_key(legacy_task or self.default_task)
        self.prefix, self.generation_defaults = self._legacy_generation_defaults()

    def _task_params_key(self, task: str) -> str:
        return task

    def _legacy_generation_defaults(self) -> tuple[str | None, dict[str, Any]]:
        defaults = dict(_PIPELINE_DEFAULTS)
        model_max_length = getattr(self.model.generation_config, "max_length", None)
        if model_max_length is not None and model_max_length != _GLOBAL_MAX_LENGTH:
            del defaults["max_new_tokens"]  # the model's own max_length (Whisper, BART-CNN) takes precedence
        prefix = getattr(self.model.config, "prefix", None)
        task_params = dict((getattr(self.model.config, "task_specific_params", None) or {}).get(self.legacy_task, {}))
        if "prefix" in task_params:
            prefix = task_params.pop("prefix")
        defaults.update(task_params)
        pad_token_id = self.tokenizer.pad_token_id
        if pad_token_id is not None and self.model.generation_config.pad_token_id is None:
            defaults["pad_token_id"] = pad_token_id
        return prefix, defaults

    def _sanitize_parameters(self, clean_up_tokenization_spaces=None, truncation=None, **generate_kwargs):
        postprocess_params = given(clean_up_tokenization_spaces=clean_up_tokenization_spaces)
        return given(truncation=truncation), generate_kwargs, postprocess_params

    def preprocess(self, text: str, truncation: bool | str = False, **_: Any) -> Any:
        inputs = self.tokenizer((self.prefix or "") + text, truncation=truncation, return_tensors="pt")
        inputs.pop("token_type_ids", None)
        return inputs

    def _forward(self, model_inputs, **generate_kwargs):
        model_inputs = dict(model_inputs)
        # Multilingual tokenizers put the target language in the inputs; rows of one batch share it.
        forced_bos = model_inputs.pop("forced_bos_token_id", None)
        if forced_bos is not None:
            generate_kwargs.setdefault(
                "forced_bos_token_id", forced_bos[0] if isinstance(forced_bos, list) else forced_bos
            )
        rows = model_inputs["input_ids"].shape[0]
        output_ids = self.model.generate(**model_inputs, **{**self.generation_defaults, **generate_kwargs})
        return {"output_ids": output_ids.reshape(rows, output_ids.shape[0] // rows, *output_ids.shape[1:])}

    def postprocess(self, model_outputs, clean_up_tokenization_spaces=False):
        return [
            {
                f"{self.return_name}_text": self.tokenizer.decode(
                    output_ids, skip_special_tokens=True, clean_up_tokenization_spaces=clean_up_tokenization_spaces
                )
            }
            for output_ids in model_outputs["output_ids"][0]
        ]


class SummarizationPipeline(Seq2SeqPipeline):
    """``"a long article"`` -> ``[{"summary_text": ...}]``."""

    return_name = "summary"
    default_task = "summarization"


class TranslationPipeline(Seq2SeqPipeline):
    """``"How old are you?"`` -> ``[{"translation_text": ...}]``; ``src_lang``/``tgt_lang`` for multilingual models."""

    return_name = "translation"
    default_task = "translation"

    def _task_params_key(self, task: str) -> str:
        # A bare "translation" takes the model's first translation_xx_to_yy entry (T5's prefix), as 4.57's
        # pipeline() did.
        if task == "translation":
            task_params = getattr(self.model.config, "task_specific_params", None) or {}
            task = next((key for key in task_params if key.startswith("translation")), task)
        return task

    def _sanitize_parameters(self, src_lang=None, tgt_lang=None, **kwargs):
        preprocess_params, forward_params, postprocess_params = super()._sanitize_parameters(**kwargs)
        return {**preprocess_params, **given(src_lang=src_lang, tgt_lang=tgt_lang)}, forward_params, postprocess_params

    def preprocess(self, text: str, truncation: bool | str = False, src_lang=None, tgt_lang=None) -> Any:
        # Multilingual tokenizers (mBART, M2M100, NLLB) mark the languages themselves.
        if hf_stages.has_translation_inputs(self.tokenizer):
            return hf_stages.translation_inputs(
                self.tokenizer, text, return_tensors="pt", truncation=truncation, src_lang=src_lang, tgt_lang=tgt_lang
            )
        return super().preprocess(text, truncation=truncation)
