"""Temporal models: TMK (Poullot, LAMV normalisation, learned kernel), CTE, TCA.
"""
