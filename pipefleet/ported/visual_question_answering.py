"""Visual question answering, as transformers 4.57 did it: ``{image, question}`` -> ``[{score, answer}]``.

Classification-head models (ViLT) score every answer of their vocabulary with a sigmoid;
generative ones (BLIP) write the answer, ``[{"answer": ...}]``.
"""

from __future__ import annotations

from typing import Any

from transformers import GenerationConfig
from transformers.image_utils import load_image
from transformers.pipelines.base import Pipeline

from pipefleet import hf_stages
from pipefleet.ported import given


class VisualQuestionAnsweringPipeline(Pipeline):
    _load_processor = False
    _load_image_processor = True
    _load_feature_extractor = False
    _load_tokenizer = True
    _pipeline_calls_generate = True
    _default_generation_config = GenerationConfig(max_new_tokens=256)  # 4.57's default for generative answers
    _non_generation_params = ("top_k",)  # the number of scored answers, not a sampling parameter

    def _sanitize_parameters(self, top_k=None, padding=None, truncation=None, timeout=None, **generate_kwargs):
        preprocess_params = given(padding=padding, truncation=truncation, timeout=timeout)
        return preprocess_params, generate_kwargs, given(top_k=top_k)

    def __call__(self, image: Any, question: str | None = None, **kwargs: Any) -> Any:
        """``pipe(image=..., question=...)`` or ``pipe({"image": ..., "question": ...})``."""
        inputs = image if isinstance(image, dict) else {"image": image, "question": question}
        return super().__call__(inputs, **kwargs)

    def preprocess(self, inputs, padding=False, truncation=False, timeout=None):
        image = load_image(inputs["image"], timeout=timeout)
        model_inputs = self.tokenizer(inputs["question"], return_tensors="pt", padding=padding, truncation=truncation)
        image_features = self.image_processor(images=image, return_tensors="pt").to(self.dtype)
        model_inputs.update(image_features)
        return model_inputs

    def _forward(self, model_inputs, **generate_kwargs):
        if self.model.can_generate():
            return self.model.generate(**model_inputs, **hf_stages.generate_kwargs(self, generate_kwargs))
        return self.model(**model_inputs)

    def postprocess(self, model_outputs, top_k=5):
        if self.model.can_generate():
            return [
                {"answer": self.tokenizer.decode(output_ids, skip_special_tokens=True).strip()}
                for output_ids in model_outputs
            ]
        top_k = min(top_k, self.model.config.num_labels)
        scores, ids = model_outputs.logits.sigmoid()[0].topk(top_k)
        return [
            {"score": score, "answer": self.model.config.id2label[_id]}
            for score, _id in zip(scores.tolist(), ids.tolist())
        ]
