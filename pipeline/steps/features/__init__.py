"""Frame features as steps: the configured extractor and its settings, the corpus fits (vocabulary,
network, PCA) and the extraction of a shard.
"""
