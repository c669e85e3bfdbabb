"""Core helpers every layer above uses: the root error, atomic writes, HDF5 files with a schema,
the cron lock, the package version.
"""
