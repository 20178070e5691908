"""Foundations every layer uses: errors, atomic writes, dataclass configs, state-dict files."""
