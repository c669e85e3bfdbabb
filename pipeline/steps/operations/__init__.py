"""Operating a corpus: the incremental refresh (cron) and ``verify``.
"""
