"""The synthetic Liverpool City Region: the test bed of every pipeline stage (never real data).

``generate_region(workspace, people, seed, config)`` writes identifiable landing extracts, published-
style area data and the ground truth behind them; see ``synthetic/README.md`` for the layouts and
everything that is planted.
"""

from synthetic.config import SynthConfig, load_config
from synthetic.region import SynthResult, generate_region

__all__ = ["SynthConfig", "SynthResult", "generate_region", "load_config"]
