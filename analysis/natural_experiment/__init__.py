"""Does health-service use change after people enrol in employment support? Three designs.

1. ``interrupted_time_series`` — the aggregate series around enrolment (no comparison group);
2. ``event_study`` — staggered-adoption DiD with not-yet-enrolled clients as the comparison
   (Callaway–Sant'Anna group-time effects), with a pre-trend test and a placebo enrolment date;
3. ``matched_comparison`` — never-enrolled registered patients matched on age band, sex, IMD,
   conditions and prior use, then DiD.

Each gives the effect, its 95% CI, the relative change, and the people and person-months behind
it. Each takes the researcher's own panel with a ``PanelColumns`` naming its columns (the
research dataset's names by default) and checks it before estimating. ``run_natural_experiment`` is the stage: it runs all three on every measure under the policy
engine and hands the results to disclosure control, which alone writes ``outputs/pending/``.
"""

from analysis.natural_experiment.designs import NaturalExperimentResults, estimate_all
from analysis.natural_experiment.event_study import event_study
from analysis.natural_experiment.its import ItsResult, interrupted_time_series
from analysis.natural_experiment.matched import matched_comparison
from analysis.natural_experiment.panel import DensePanel, PanelColumns
from analysis.natural_experiment.results import Estimate, EventStudy
from analysis.natural_experiment.stage import NaturalExperimentRun, run_natural_experiment

__all__ = [
    "DensePanel",
    "Estimate",
    "EventStudy",
    "ItsResult",
    "NaturalExperimentResults",
    "NaturalExperimentRun",
    "PanelColumns",
    "estimate_all",
    "event_study",
    "interrupted_time_series",
    "matched_comparison",
    "run_natural_experiment",
]
