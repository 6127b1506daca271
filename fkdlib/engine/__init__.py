"""The engine: one trainer (students, frozen teachers, resume, NaN stop, run records), evaluation, folding, precision."""
