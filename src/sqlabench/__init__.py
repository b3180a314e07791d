"""sqlabench: measured answers to SQLAlchemy 2.x performance questions on real databases."""

__version__ = "0.1.0"
