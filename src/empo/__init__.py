"""empo: make language models more empathetic, and measure whether they are."""

__version__ = "0.1.0"
