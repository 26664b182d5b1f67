"""Measurements behind the recipes (train/NOTES.md), apart from the steps that ship a model:
recipe comparisons on validation data (`python -m train compare`), training throughput
(`python -m train throughput`) and the transfer measurement
(`python -m train.experiments.transfer`).
"""
