"""fkdlib: the thin library behind the FKD teaching notebooks."""
__version__ = "0.1.0"
