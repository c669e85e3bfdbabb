"""Steps that train a temporal model on a dataset's ground truth (held-out folds): the learned
LAMV kernel and TCA.
"""
