"""What a search writes: ranked matches (``results.h5``/``results.csv``), copy segments in the VSC 2022
and VCSL formats, and the ranking behind a report's pair AP (``pair_scores.csv``).
"""
