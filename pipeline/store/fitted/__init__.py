"""Files of what is fitted or trained on a corpus: PCA, MultiVLAD vocabulary, the selfsup network,
learned LAMV kernels, TCA checkpoints (each with its provenance).
"""
