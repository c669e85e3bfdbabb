"""Storage and layout: every artifact path (``layout``), its identities, every artifact's schema
and I/O, completeness checks, publication and quarantine.
"""
