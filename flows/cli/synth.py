"""``ehl synth``: generate the synthetic city region (test bed only, never real data)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import WorkspaceOption, console, handle_errors, open_workspace, print_outputs, progress

app = typer.Typer(
    help="Generate a synthetic Liverpool City Region: health records, employment-support extracts, "
    "area data and the ground truth behind them.",
    invoke_without_command=True,
)


@app.callback(invoke_without_command=True)
@handle_errors
def synth(
    people: Annotated[
        int, typer.Option("--people", "-n", help="Residents to generate (tests 10000, demo 200000).")
    ] = 10_000,
    seed: Annotated[
        int, typer.Option("--seed", "-s", help="Random seed: same seed, byte-identical files.")
    ] = 1,
    workspace: WorkspaceOption = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="YAML file overriding any rate or effect (see synthetic/README.md)."
        ),
    ] = None,
    error_scale: Annotated[
        float | None,
        typer.Option(
            "--error-scale",
            help="Multiply every identifier error rate (0 = clean extracts, 2 = twice as messy).",
        ),
    ] = None,
    no_effect: Annotated[
        bool,
        typer.Option(
            "--no-effect", help="Plant no effect of enrolment on health-service use (null scenario)."
        ),
    ] = False,
    gp_effect: Annotated[
        float | None,
        typer.Option("--gp-effect", help="Relative change in GP appointments after enrolment, e.g. -0.08."),
    ] = None,
    ae_effect: Annotated[
        float | None,
        typer.Option("--ae-effect", help="Relative change in A&E attendances after enrolment, e.g. -0.12."),
    ] = None,
    antidepressant_effect: Annotated[
        float | None,
        typer.Option(
            "--antidepressant-effect", help="Relative change in antidepressant items after enrolment."
        ),
    ] = None,
    enrolment_rate: Annotated[
        float | None,
        typer.Option("--enrolment-rate", help="Share of working-age residents who enrol (default 0.09)."),
    ] = None,
) -> None:
    """Write landing extracts, reference area data and truth into the workspace."""
    from ig_policies.errors import ConfigError
    from synthetic import SynthConfig, generate_region, load_config

    cfg = load_config(config) if config is not None else SynthConfig()
    if error_scale is not None:
        if error_scale < 0:
            raise ConfigError(
                f"--error-scale must be zero or more, not {error_scale}.", hint="e.g. --error-scale 2"
            )
        cfg = cfg.with_error_scale(error_scale)
    changes = {
        "gp_appointments": gp_effect,
        "ae_attendances": ae_effect,
        "antidepressant_items": antidepressant_effect,
    }
    if any(v is not None for v in changes.values()):
        rel = dict(cfg.health_effect.relative_change)
        for measure, value in changes.items():
            if value is not None:
                if value <= -1:
                    raise ConfigError(
                        f"An effect of {value} on {measure} would make the rate negative.",
                        hint="give a relative change above -1, e.g. -0.08 for 8% fewer.",
                    )
                rel[measure] = value
        cfg = cfg.model_copy(
            update={"health_effect": cfg.health_effect.model_copy(update={"relative_change": rel})}
        )
    if no_effect:
        cfg = cfg.without_health_effect()
    if enrolment_rate is not None:
        if not 0 < enrolment_rate < 1:
            raise ConfigError(
                f"--enrolment-rate must be between 0 and 1, not {enrolment_rate}.", hint="e.g. 0.09"
            )
        cfg = cfg.model_copy(update={"selection": cfg.selection.model_copy(update={"rate": enrolment_rate})})

    ws = open_workspace(workspace)
    with progress(f"Generating {people:,} synthetic residents", total=100) as advance:
        result = generate_region(ws, people, seed, cfg, progress=lambda n, d: advance(n, description=d))
    c = result.counts
    console.print(
        f"{c['persons']:,} residents, {c['patients']:,} GP patients, {c['activity_rows']:,} activity rows, "
        f"{c['ways_to_work_rows']:,} Ways to Work and {c['health_into_work_rows']:,} Health into Work rows."
    )
    print_outputs(result.outputs())
