"""The pipeline's steps: one module per operation, shared by the command line and the Luigi tasks.

    [fitting] -> extract -> describe -> index -> search -> evaluate (-> report); build walks the chain
"""
