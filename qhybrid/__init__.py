"""qhybrid: versioned hybrid quantum-classical experiments, promoted through staged gates."""

__version__ = "0.1.0"
__all__ = ["__version__"]
