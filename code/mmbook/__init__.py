"""Companion package of the book *Multimodal Large Models: Principles and Practice*.

Importing :mod:`mmbook` applies the network hygiene of :mod:`mmbook.env` first, so that gradio and
huggingface_hub, whenever they are imported later, find analytics and telemetry switched off.
"""

from mmbook import env

__all__ = ["env"]
__version__ = "0.1.0"
