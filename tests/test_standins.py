"""The offline stand-ins of Chapter 8 (tiny ViLT, retrieval captioner, random checkpoints, question parser),
each checked for what it claims and no more."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from mmbook import inference, random_checkpoints, retrieval_captioner, sound, tiny_vilt
from mmbook.data import ANSWERS, QUESTION_TYPES, VOCABULARY, make_shapes
from mmbook.data.questions import question_type


def test_the_bert_tokenizer_has_one_token_per_word_of_the_book() -> None:
    tok = tiny_vilt.bert_tokenizer()
    ids = tok("What colour is the triangle in the top left corner?")["input_ids"]
    assert tok.convert_ids_to_tokens(ids)[0] == "[CLS]" and tok.convert_ids_to_tokens(ids)[-1] == "[SEP]"
    assert tok.unk_token_id not in ids and len(ids) == 13  # ten words, "?", [CLS] and [SEP]
    assert len(tok) == len(set(VOCABULARY) | set(tiny_vilt.BERT_SPECIALS))


def test_the_tiny_vilt_is_saved_in_the_hub_format_and_loads_with_the_online_classes() -> None:
    from transformers import ViltForQuestionAnswering, ViltProcessor

    folder = tiny_vilt.tiny_vilt_path()
    processor = ViltProcessor.from_pretrained(folder)
    model = ViltForQuestionAnswering.from_pretrained(folder).eval()
    assert model.config.id2label == dict(enumerate(ANSWERS))
    scene = make_shapes(1, seed=3)
    batch = processor(images=scene.images[0], text=scene.questions[0][0], return_tensors="pt")
    assert batch["pixel_values"].shape == (1, 3, 48, 48) and batch["pixel_mask"].shape == (1, 48, 48)
    with torch.inference_mode():
        logits = model(**batch).logits
    assert logits.shape == (1, len(ANSWERS)) and torch.isfinite(logits).all()


def test_the_tiny_vilt_record_is_honest() -> None:
    record = tiny_vilt.tiny_vilt_record(tiny_vilt.tiny_vilt_path())
    assert set(record["accuracy"]) == {*QUESTION_TYPES, "all"} == set(record["blind"])
    assert record["settings"] == dataclasses.asdict(tiny_vilt.TINY_VILT)
    # it looks at the picture for colours and counts: clearly better than the blind baseline there
    assert record["accuracy"]["color"] > record["blind"]["color"] + 0.2
    assert record["accuracy"]["count"] > record["blind"]["count"] + 0.1
    assert record["accuracy"]["all"] > record["blind"]["all"]


def test_the_recorded_accuracy_is_what_the_saved_model_scores() -> None:
    model, processor = tiny_vilt.tiny_vilt()
    held_out = make_shapes(tiny_vilt.TINY_VILT.eval_scenes, seed=tiny_vilt.TINY_VILT.eval_seed)
    accuracy = tiny_vilt.vilt_accuracy(model, tiny_vilt.question_set(processor, held_out))
    assert accuracy == pytest.approx(tiny_vilt.tiny_vilt_record()["accuracy"], abs=1e-6)


def test_the_blind_baseline_never_looks_at_pictures() -> None:
    train, test = make_shapes(500, seed=1), make_shapes(200, seed=2)
    blind = tiny_vilt.blind_accuracy(train, test)
    shuffled = make_shapes(200, seed=2)
    shuffled.images = shuffled.images[::-1].copy()
    assert tiny_vilt.blind_accuracy(train, shuffled) == blind
    assert blind["all"] == pytest.approx(np.mean([blind[t] for t in QUESTION_TYPES]))  # one question of each type
    # without the picture, colour and shape are guesses among six and five (measured: 0.18 and 0.17)
    assert blind["color"] < 0.3 and blind["shape"] < 0.3 and blind["exists"] > 0.3


def test_question_types_are_recognised_exactly_on_the_data() -> None:
    data = make_shapes(500, seed=4)
    for questions in data.questions:
        assert [question_type(q) for q in questions] == list(QUESTION_TYPES)
    assert question_type("why is the sky blue?") is None


def test_retrieval_captions_are_existing_captions_and_mostly_right() -> None:
    captioner = retrieval_captioner.retrieval_captioner()
    scenes = make_shapes(100, seed=77, max_shapes=1)
    found = captioner(list(scenes.images), k=2)
    assert all(len(best) == 2 and best[0].score >= best[1].score for best in found)
    assert all(best[0].caption in captioner.captions for best in found)
    assert "nothing was generated" in captioner.label
    precision = retrieval_captioner.retrieval_precision(captioner, scenes)
    assert precision["objects"] >= precision["exact"] and precision["objects"] > 0.5


def test_retrieval_takes_pictures_of_any_size() -> None:
    from PIL import Image

    captioner = retrieval_captioner.retrieval_captioner()
    pictures = [Image.new("RGB", (300, 200), (230, 40, 40)), np.zeros((64, 64, 3), np.uint8)]
    assert len(captioner(pictures)) == 2


def test_a_random_blip_runs_the_captioning_code(tmp_path) -> None:
    """Only the types: a random BLIP's words are noise and are never shown as a caption."""
    from mmbook import hub

    model, processor = hub.load("blip", source=random_checkpoints.save_random_blip(tmp_path / "blip"))
    scenes = make_shapes(2, seed=1)
    captions = inference.caption(model, processor, list(scenes.images), max_new_tokens=5)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)


def test_a_random_whisper_runs_the_speech_code(tmp_path) -> None:
    from transformers import pipeline

    folder = random_checkpoints.save_random_whisper(tmp_path / "w")
    recogniser = pipeline("automatic-speech-recognition", model=str(folder))
    scene = make_shapes(1, seed=2)
    audio = sound.prepare_audio(scene.audio[0], scene.sample_rate)
    assert isinstance(inference.transcribe(recogniser, audio, max_new_tokens=4), str)
    features = sound.log_mel(recogniser.feature_extractor, audio)
    assert features.shape == (80, 3000)


def test_training_saves_a_complete_folder_and_restores_the_deterministic_setting(tmp_path) -> None:
    from transformers import ViltForQuestionAnswering, ViltProcessor

    settings = dataclasses.replace(tiny_vilt.TINY_VILT, n_scenes=60, eval_scenes=20, steps=3, batch_size=16)
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        record = tiny_vilt.train_tiny_vilt(tmp_path, settings)
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    assert len(record["losses"]) == 3 and set(record["accuracy"]) == {*QUESTION_TYPES, "all"}
    processor = ViltProcessor.from_pretrained(tmp_path)
    model = ViltForQuestionAnswering.from_pretrained(tmp_path).eval()
    # answer() reads the scores as the checkpoint was trained: softmax here, sigmoids for the hub's ViLT
    assert model.config.problem_type == "single_label_classification"
    scene, every = make_shapes(1, seed=3), len(ANSWERS)
    image, question = scene.images[0], scene.questions[0][0]
    softmax = inference.answer(model, processor, image, question, k=every)
    model.config.problem_type = None
    sigmoids = inference.answer(model, processor, image, question, k=every)
    with torch.inference_mode():
        logits = model(**processor(images=image, text=question, return_tensors="pt")).logits[0]
    assert sum(p for _, p in softmax) == pytest.approx(1, abs=1e-5)
    assert [a for a, _ in sigmoids] == [a for a, _ in softmax]
    assert [p for _, p in sigmoids] == pytest.approx(sorted(logits.sigmoid().tolist(), reverse=True), abs=1e-6)
