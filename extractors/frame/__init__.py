"""Frame-feature extractors (ResNet-34 + R-MAC, PDQF, MultiVLAD, selfsup) and what they share:
the extractor interface and recommended settings (``base``), PCA-whitening, copy attacks, black bars.
"""
