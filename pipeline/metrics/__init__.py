"""Evaluation metrics (spec section 5) as pure NumPy functions: localisation, copies (VCDB),
events (EVVE), pair-level AP, segment metrics (VSC 2022, VCSL) and paired statistics.
"""
