"""Datasets: the corpus listing, ground-truth readers, the dataset-kind registry, generated corpora.
"""
