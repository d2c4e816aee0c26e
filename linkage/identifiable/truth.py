"""The synthetic truth in the pipeline's pseudonyms: the keyed step of evaluating a linkage.

A synthetic workspace's ``truth/record_links.parquet`` says which provider records belong to the
same person, by the providers' own record references. The linkage only ever sees research
pseudonyms, so the truth is turned into them here, under the same research key and with the same
function as pseudonymisation (``tokens.research_pseudonym``), before the evaluation in
``linkage.quality`` scores the links. That keeps the key and the references inside this package:
the evaluation receives pseudonymised pairs only.
"""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd

from ig_policies.errors import InputError
from ig_policies.workspace import Workspace
from linkage.identifiable.tokens import research_pseudonym

TRUTH_FILE = "record_links.parquet"
#: The two columns of the pseudonymised truth handed to ``linkage.quality.evaluate``.
TRUTH_COLUMNS = ("client_pseudonym", "true_patient")


def pseudonymised_truth(
    workspace: Workspace, research_key: bytes, programmes: Collection[str]
) -> pd.DataFrame:
    """(client_pseudonym, true_patient) for every client of ``programmes`` in the truth.

    ``true_patient`` is the research pseudonym of the client's health record, null when the person
    has none. Refuses (InputError) a workspace without truth: real data has nothing to score against.
    """
    path = workspace.truth / TRUTH_FILE
    if not path.exists():
        raise InputError(
            str(path),
            "there is no ground truth in this workspace",
            hint="evaluation works only on synthetic workspaces made by 'ehl synth'; real data has no truth to score against",
        )
    truth = pd.read_parquet(path, columns=["dataset", "record_id", "person_id"])
    is_client = truth["dataset"].isin(set(programmes))
    clients = truth[is_client].copy()
    patients = truth[~is_client & truth["dataset"].str.contains("health")].copy()
    clients["client_pseudonym"] = research_pseudonym(
        (clients["dataset"] + ":" + clients["record_id"].astype(str)).astype(str), research_key, "C"
    )
    patients["true_patient"] = research_pseudonym(patients["record_id"].astype(str), research_key, "P")
    person_patient = patients.drop_duplicates("person_id").set_index("person_id")["true_patient"]
    clients["true_patient"] = clients["person_id"].map(person_patient)
    return clients[list(TRUTH_COLUMNS)].reset_index(drop=True)
