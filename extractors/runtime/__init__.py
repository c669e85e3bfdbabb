"""Run-time helpers of every layer: the one time base, progress bars, failpoints.
"""
