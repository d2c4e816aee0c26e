"""The only modules that may read identifiers: ingest, validation, standardisation, tokens, the
Bloom-filter encoder, the National Data Opt-out and pseudonymisation.

Everything here handles identifiable rows from ``landing/`` and the keys derived from the master
secret, and writes only tokens, keyed encodings and research pseudonyms onward. No module outside
this package may import from it, except the stage functions that run these steps
(``flows/stages.py``) and the tests; ``tests/unit/test_boundaries.py`` enforces that.
"""
