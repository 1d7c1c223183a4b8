"""Model compression (int8, fp16, ternary 1.58-bit) with an accuracy-retention gate.

Not built yet: this package is the home of issue #4 (pure torch, no Prefect).
"""
