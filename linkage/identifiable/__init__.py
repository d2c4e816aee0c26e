"""The only modules that may read identifiers: ingest, validation, standardisation, tokens, the
Bloom-filter encoder, the National Data Opt-out, pseudonymisation and the synthetic truth's
pseudonyms (``truth``).

Everything here handles identifiable rows from ``landing/`` and the keys derived from the master
secret, and writes only tokens, keyed encodings and research pseudonyms onward. No module outside
this package may import from it, except the stage functions that run these steps
(``flows/stages.py``), the synthetic-region generator and the tests and benchmarks; nor may it
name an identifier column. ``tests/unit/test_boundaries.py`` enforces both, with the names below,
which are the one list of identifier columns in the project.
"""

#: Canonical fields that identify a person directly. Dataset configs map each provider's columns
#: to these names; pseudonymisation never copies them onward (nor any field the policy lists as a
#: dataset's ``direct_identifiers``). Address lines and telephone numbers are sent by some
#: providers and never mapped, so ingest drops them; they are listed so that a config mapping
#: them cannot carry them past pseudonymisation either.
DIRECT_IDENTIFIERS: tuple[str, ...] = (
    "nhs_number",
    "forename",
    "surname",
    "date_of_birth",
    "postcode",
    "address_line_1",
    "address_line_2",
    "address_line_3",
    "telephone",
)

#: Each provider's own reference of a record: identifies the record in the provider's system.
RECORD_REFERENCES: tuple[str, ...] = ("client_ref", "patient_id")

#: The standardised forms of the direct identifiers (``standardise.standardise_identifiers``), from
#: which tokens and Bloom-filter encodings are computed.
STANDARDISED_IDENTIFIERS: tuple[str, ...] = (
    "std_nhs_number",
    "std_forename",
    "std_forename_canonical",
    "std_surname",
    "std_surname_first",
    "std_surname_last",
    "std_forename_phonetic",
    "std_surname_phonetic",
    "std_forename_initial",
    "std_dob",
    "std_dob_year",
    "std_dob_month",
    "std_dob_day",
    "std_postcode",
    "std_postcode_sector",
    "std_postcode_district",
)

#: Every column name that holds an identifier, as received or standardised.
IDENTIFIER_COLUMNS: frozenset[str] = frozenset(
    (*DIRECT_IDENTIFIERS, *RECORD_REFERENCES, *STANDARDISED_IDENTIFIERS)
)
