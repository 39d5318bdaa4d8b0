"""LLM Workbench: which GGUF models this computer can run, how fast, and running them."""

__version__ = "0.1.0"
