"""Machine monitor: a sensor series and a maintenance log in, fault probabilities and an alert out (Chapter 12)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from mmbook.apps.common import checked, once, raw, shorten, whole_number
from mmbook.data import CHANNEL_NAMES, LABELS, Sensors, make_sensors, words
from mmbook.errors import InputError
from mmbook.limits import MAX_TEXT_CHARS
from mmbook.monitoring import MIN_LENGTH, Monitor, probabilities, train_monitor

CHANNELS = 3
MAX_LENGTH = 4096
TRAIN_MACHINES = 1500
FLEET = 500
"""Held-out machines the app can show: ``make_sensors(FLEET, seed=1)`` (training used seed 0)."""
ALERT_THRESHOLD = 0.9
"""An alert is raised when the probability of some fault, ``1 − P(normal)``, reaches this."""


@once
def fleet() -> Sensors:
    """The app's held-out machines (Chapter 12)."""
    return make_sensors(FLEET, seed=1)


@once
def monitor_model() -> Monitor:
    """The app's monitor: concatenation fusion with modality dropout, trained on 1,500 machines (Chapter 12)."""
    data = make_sensors(TRAIN_MACHINES, seed=0)
    return train_monitor("concat", data.series, data.logs, data.labels, modality_dropout=0.3, prefixes=True)[0]


def read_series(path: Any) -> np.ndarray:
    """A CSV file of readings → ``(3, L)`` float32; one row per channel, or one column per channel."""
    expected = (f"a CSV file of numbers with {CHANNELS} rows ({', '.join(CHANNEL_NAMES[:CHANNELS])}) and "
                f"{MIN_LENGTH} to {MAX_LENGTH:,} readings each, or the same as columns")
    try:
        with warnings.catch_warnings():  # an empty file warns, then gives an empty table
            warnings.simplefilter("ignore", UserWarning)
            values = np.loadtxt(Path(path), delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, ValueError, UnicodeDecodeError):
        raise InputError(f"The upload could not be read as {expected}.") from None
    if values.size == 0:
        raise InputError(f"The upload is empty; please send {expected}.")
    rows, columns = values.shape
    if rows != CHANNELS and columns == CHANNELS:
        values = values.T
    if values.shape[0] != CHANNELS or not MIN_LENGTH <= values.shape[1] <= MAX_LENGTH:
        raise InputError(f"The upload must be {expected}; got a table of {rows:,} × {columns:,} numbers.")
    if not np.isfinite(values).all():
        raise InputError("The upload holds a missing or infinite reading; please send finite numbers only.")
    return values.astype(np.float32)


def _log(value: Any) -> str | None:
    """The typed log, stripped; None when empty (the log is missing)."""
    if value is not None and not isinstance(value, str):
        raise InputError(f"The log must be text; got {shorten(repr(value))}.")
    text = (value or "").strip()
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"The log is too long: {len(text):,} characters; please keep it to {MAX_TEXT_CHARS}.")
    if text and not any(w.isalpha() for w in words(text)):
        raise InputError("The log has no words; write one like 'grinding noise near the bearing', or leave it "
                         "empty.")
    return text or None


@checked
def diagnose(machine: Any, upload: Any, log: Any) -> tuple[dict[str, float], str, str]:
    """Fault probabilities, an alert and a note for one machine (Chapter 12).

    The series is the uploaded CSV when there is one, else that of ``machine``, an index into
    :func:`fleet`. An empty ``log`` is a missing log: the monitor reads the series alone. The note gives a
    fleet machine's recorded log and true condition.
    """
    text = _log(log)
    if upload:
        series, note = read_series(upload), "An uploaded series: its true condition is unknown."
    else:
        index = whole_number(machine, "machine number", 0, FLEET - 1, alternative=", or upload a CSV file")
        sample = fleet()[index]
        series = sample["series"][:CHANNELS]
        note = (f"Machine {index}: its true condition is {LABELS[sample['label']].replace('_', ' ')}; "
                f"its recorded log says {sample['log']!r}.")
    p = probabilities(monitor_model(), series[None], None if text is None else [text])[0]
    fault = 1 - float(p[0])
    worst = LABELS[1 + int(np.argmax(p[1:]))]
    source = "the series alone (no log)" if text is None else "the series and the log"
    if fault >= ALERT_THRESHOLD:
        alert = f"ALERT: probably {worst.replace('_', ' ')} (any fault {100 * fault:.0f}%), from {source}."
    else:
        alert = f"No alert: any fault {100 * fault:.0f}%, below {100 * ALERT_THRESHOLD:.0f}%, from {source}."
    return {name: float(q) for name, q in zip(LABELS, p, strict=True)}, alert, note


def build_monitoring_app() -> gr.Blocks:
    """A machine (a fleet number or a CSV upload) and a log in; fault probabilities and an alert out (Chapter 12)."""
    monitor_model()  # trained now (about a second), before the first request
    fleet()
    with gr.Blocks(title="Machine monitor") as demo:
        gr.Markdown(
            "## Machine monitor: sensors and maintenance log\n"
            f"Choose one of {FLEET} simulated machines or upload a CSV of {CHANNELS} channels "
            f"({', '.join(CHANNEL_NAMES[:CHANNELS])}), type the technician's log (or leave it empty), and "
            f"the monitor fuses both. It raises an alert when some fault reaches {100 * ALERT_THRESHOLD:.0f}%."
        )
        with gr.Row():
            with gr.Column():
                machine = raw(gr.Number(value=1, label=f"Machine number (0 to {FLEET - 1})", step=1))
                upload = gr.File(label="…or a CSV of readings", file_types=[".csv"], type="filepath")
                log = gr.Textbox(value="grinding noise near the bearing", label="Maintenance log (may be empty)")
                button = gr.Button("Diagnose", variant="primary")
            with gr.Column():
                label = gr.Label(label="Fault probabilities", num_top_classes=len(LABELS))
                alert = gr.Textbox(label="Alert")
                note = gr.Textbox(label="About this machine", lines=2)
        button.click(diagnose, [machine, upload, log], [label, alert, note], api_name="diagnose")
    return demo
