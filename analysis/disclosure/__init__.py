"""Disclosure control: only protected aggregates leave the TRE, and only after an IG officer says so.

Analyses build typed outputs (``FrequencyTable``, ``MagnitudeTable``, ``ModelResult``, ``Figure``)
and hand them to ``request_output``; checks run against the policy's output rules
(``ig_policies.policy.OutputRules``), the protected version is prepared, and an IG officer releases
or rejects it. See docs/ARCHITECTURE.md, "Disclosure control".
"""

from analysis.disclosure.checks import REGISTRY
from analysis.disclosure.outputs import (
    TOTAL,
    DisclosureOutput,
    Figure,
    FrequencyTable,
    MagnitudeTable,
    ModelResult,
    Note,
    load_output,
    save_output,
)
from analysis.disclosure.protection import check_output
from analysis.disclosure.report import CheckReport, Finding, Outcome
from analysis.disclosure.workflow import (
    OfficerSigner,
    OutputRequest,
    ReleaseResult,
    VerificationReport,
    grant_exception,
    justify_request,
    list_requests,
    pending_reviews,
    reject_output,
    release_output,
    request_changes,
    request_output,
    request_staged,
    review_requests,
    stage_output,
    submit_output,
    verify_all_releases,
    verify_release,
)

__all__ = [
    "REGISTRY",
    "TOTAL",
    "CheckReport",
    "DisclosureOutput",
    "Figure",
    "Finding",
    "FrequencyTable",
    "MagnitudeTable",
    "ModelResult",
    "Note",
    "Outcome",
    "OfficerSigner",
    "OutputRequest",
    "ReleaseResult",
    "VerificationReport",
    "check_output",
    "grant_exception",
    "justify_request",
    "list_requests",
    "load_output",
    "pending_reviews",
    "reject_output",
    "release_output",
    "request_changes",
    "request_output",
    "request_staged",
    "review_requests",
    "save_output",
    "stage_output",
    "submit_output",
    "verify_all_releases",
    "verify_release",
]
