"""Dataset configurations shipped with the package (``base.yaml`` holds every default)."""
