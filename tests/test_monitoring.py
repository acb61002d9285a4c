"""Chapter 12's industrial monitor: features, per-class F1 against scikit-learn, fusion against each
modality, a missing log, early warning, and the app through gradio_client, bad input included."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from helpers import module_client
from mmbook.apps.monitoring import FLEET, build_monitoring_app, diagnose, fleet, read_series
from mmbook.data import LABELS, SENSORS_VOCABULARY, make_sensors
from mmbook.errors import InputError
from mmbook.monitoring import (
    STATISTICS,
    early_warning,
    fault_scores,
    log_counts,
    per_class_f1,
    probabilities,
    series_features,
    train_monitor,
)


@pytest.fixture(scope="module")
def machines():
    return make_sensors(1200, seed=0)


@pytest.fixture(scope="module")
def client():
    yield from module_client(build_monitoring_app())


def _accuracy(model, data, rows, logs=True) -> float:
    p = probabilities(model, data.series[rows], [data.logs[i] for i in rows] if logs else None)
    return float((p.argmax(1) == data.labels[rows]).mean())


def test_series_features_and_log_counts() -> None:
    x = np.zeros((2, 3, 64), dtype=np.float32)
    x[0, 1] = np.arange(64)  # a ramp: drift 64 - 16 = 48, roughness 0, jump 1
    f = series_features(x).reshape(2, 3, len(STATISTICS))
    assert f.shape == (2, 3, 5) and (f[1] == 0).all()
    assert f[0, 1].tolist() == pytest.approx([np.arange(64).std(), 63, 48, 0, 1])
    assert series_features(x[:, :, :8]).shape == (2, 15)
    with pytest.raises(ValueError, match="L >= 8"):
        series_features(x[:, :, :7])
    counts = log_counts(["note: no issues, no issues", ""])
    assert counts.shape == (2, len(SENSORS_VOCABULARY))
    assert counts[0, SENSORS_VOCABULARY.index("issues")] == 2 and counts[1].sum() == 0
    with pytest.raises(InputError, match="'gizmo'"):
        log_counts(["the gizmo broke"])


def test_per_class_f1_matches_scikit_learn() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    truth, predicted = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    predicted[:100] = truth[:100]
    np.testing.assert_allclose(per_class_f1(truth, predicted), f1_score(truth, predicted, average=None))
    assert per_class_f1([0, 0], [0, 0], 3).tolist() == [1.0, 0.0, 0.0]


def test_training_is_deterministic_and_fast(machines) -> None:
    args = (machines.series[:300], machines.logs[:300], machines.labels[:300])
    first, seconds = train_monitor("gated", *args, steps=50)
    second, _ = train_monitor("gated", *args, steps=50)
    state = torch.get_rng_state()
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert seconds < 10 and torch.equal(state, torch.get_rng_state())
    with pytest.raises(ValueError, match="method must be one of"):
        train_monitor("nonsense", *args)


def test_fusion_beats_each_modality_and_dropout_helps_without_the_log(machines) -> None:
    train, test = np.arange(900), np.arange(900, 1200)
    args = (machines.series[train], [machines.logs[i] for i in train], machines.labels[train])
    acc = {m: _accuracy(train_monitor(m, *args)[0], machines, test) for m in ("series", "log", "concat")}
    assert acc["concat"] > max(acc["series"], acc["log"]) + 0.05
    plain, dropped = (train_monitor("concat", *args, modality_dropout=r)[0] for r in (0.0, 0.3))
    assert _accuracy(dropped, machines, test, logs=False) > _accuracy(plain, machines, test, logs=False)


def test_early_warning_trades_precision_for_lead_time() -> None:
    scores = np.array([[0.2, 0.95, 0.5], [0.6, 0.99, 0.7], [0.99, 0.99, 0.8]])  # 3 lengths × 3 machines
    low, high = early_warning(scores, [32, 64, 128], np.array([True, True, False]), [0.5, 0.9])
    assert low == pytest.approx({"threshold": 0.5, "precision": 2 / 3, "recall": 1.0,
                                 "seen": (64 / 128 + 32 / 128) / 2, "false_alarms": 1.0})
    assert high == pytest.approx({"threshold": 0.9, "precision": 1.0, "recall": 1.0,
                                  "seen": (1 + 32 / 128) / 2, "false_alarms": 0.0})
    assert np.isnan(early_warning(scores, [32, 64, 128], np.ones(3, bool), [1.5])[0]["precision"])


def test_fault_scores_rise_as_more_of_a_faulty_series_is_read(machines) -> None:
    model, _ = train_monitor("concat", machines.series[:900], machines.logs[:900], machines.labels[:900],
                             modality_dropout=0.3, prefixes=True)
    faulty = np.flatnonzero(machines.labels[900:] > 0) + 900
    scores = fault_scores(model, machines.series[faulty], [16, 128])
    assert scores.shape == (2, len(faulty)) and scores[1].mean() > scores[0].mean()


def test_read_series_accepts_rows_or_columns(tmp_path) -> None:
    data = make_sensors(1, seed=1).series[0, :3]
    np.savetxt(tmp_path / "rows.csv", data, delimiter=",")
    np.savetxt(tmp_path / "cols.csv", data.T, delimiter=",")
    np.testing.assert_allclose(read_series(tmp_path / "rows.csv"), data, rtol=1e-6)
    np.testing.assert_allclose(read_series(tmp_path / "cols.csv"), data, rtol=1e-6)


def test_the_app_diagnoses_and_alerts(client, tmp_path) -> None:
    machines = fleet()
    worn = int(np.flatnonzero(machines.labels == 1)[0])  # bearing wear
    label, alert, note = client.predict(worn, None, "grinding noise near the bearing", api_name="/diagnose")
    assert label["label"] == "bearing_wear" and alert.startswith("ALERT: probably bearing wear")
    assert note.startswith(f"Machine {worn}: its true condition is bearing wear; its recorded log says")
    assert {c["label"] for c in label["confidences"]} == set(LABELS)
    assert sum(c["confidence"] for c in label["confidences"]) == pytest.approx(1, abs=1e-4)
    label, alert, _ = client.predict(worn, None, "", api_name="/diagnose")
    assert alert.endswith("from the series alone (no log).")
    np.savetxt(tmp_path / "m.csv", machines.series[worn], delimiter=",")
    by_file = client.predict(0, handle_file(str(tmp_path / "m.csv")), "", api_name="/diagnose")
    assert by_file[1] == alert and by_file[2] == "An uploaded series: its true condition is unknown."
    healthy = int(np.flatnonzero(machines.labels == 0)[0])
    calm = client.predict(healthy, None, "all readings look fine", api_name="/diagnose")[1]
    assert calm.startswith("No alert")


@pytest.mark.parametrize(
    ("seed", "content", "log", "message"),
    [
        (None, None, "", "Please enter the machine number"),
        (-1, None, "", "whole number from 0 to 499; got -1"),
        (FLEET, None, "", "whole number from 0 to 499; got 500"),
        (1, None, "the gizmo broke", "the word 'gizmo'"),
        (1, None, "!!!", "The log has no words"),
        (1, None, "a" * 600, "The log is too long"),
        (1, "1,2,3\n4,5,6\n", "", "got a table of 2 × 3 numbers"),
        (1, "a,b\nc,d\n", "", "could not be read"),
        (1, "", "", "The upload is empty"),
        (1, "\n".join(["1,2,nan"] * 20), "", "missing or infinite"),
    ],
)
def test_bad_input_gets_a_clear_message(client, tmp_path, seed, content, log, message) -> None:
    upload = None
    if content is not None:
        (tmp_path / "bad.csv").write_text(content)
        upload = handle_file(str(tmp_path / "bad.csv"))
    with pytest.raises(AppError, match=message) as error:
        client.predict(seed, upload, log, api_name="/diagnose")
    assert "Traceback" not in str(error.value)
    assert client.predict(1, None, "", api_name="/diagnose")[1]  # the server keeps serving


def test_an_upload_of_another_type_is_refused(client, tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("1,2,3\n")
    with pytest.raises(AppError, match="Invalid file type"):
        client.predict(1, handle_file(str(tmp_path / "notes.txt")), "", api_name="/diagnose")


def test_diagnose_checks_input_when_called_directly() -> None:
    with pytest.raises(gr.Error, match="The log must be text"):
        diagnose(1, None, 5)
    with pytest.raises(gr.Error, match="whole number"):
        diagnose(True, None, "")
