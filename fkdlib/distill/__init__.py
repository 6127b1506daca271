"""Distillation: feature kernels and their alignment, the losses (FKD, KD, RKD, SP) and the methods that combine them."""
