"""Training loops of the learned temporal models: the LAMV kernel (loss, triplets, loop) and TCA.
"""
