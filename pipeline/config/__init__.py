"""Configuration: typed sections (``schema``), their validation (``validate``) and loading
(``load``: ``configs/base.yaml`` + ``configs/<dataset>.yaml`` + overrides).
"""
