"""Decoding: PyAV frames sampled at 15 fps (``reader``), the sampling rule (``timestamps``) and the
decode worker pool with its time limit and memory cap (``pool``).
"""
