"""edge-asc: acoustic scene classification at the edge (Ngo et al., 2022, and beyond)."""

__version__ = "0.1.0"
