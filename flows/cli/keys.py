"""`ehl keys`: IG officer signing keys, the trust store, and the service's master key file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import console, handle_errors, print_outputs
from ig_policies.errors import ConfigError


def say(text: str) -> None:
    """Print plain text: wrapped by the terminal, never read as markup (policies contain brackets)."""
    console.print(text, soft_wrap=True, markup=False, highlight=False)


app = typer.Typer(
    no_args_is_help=True,
    help="Create IG officer signing keys, trust them, and create the service's master key file.",
)

PassphraseEnvOption = Annotated[
    str | None,
    typer.Option(
        "--passphrase-env",
        help="Name of an environment variable holding the passphrase (for scripts); otherwise you are asked.",
    ),
]


def read_passphrase(env_var: str | None, prompt: str, confirm: bool) -> str:
    """The passphrase from the named environment variable, or asked for without echo."""
    if env_var:
        value = os.environ.get(env_var)
        if not value:
            raise ConfigError(
                f"the environment variable {env_var} named by --passphrase-env is not set or empty",
                hint=f"set {env_var}, or leave out --passphrase-env to be asked",
            )
        return value
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)


@app.command("new")
@handle_errors
def new_key(
    name: Annotated[
        str, typer.Option("--name", help="Officer name, used for the file names (e.g. jane-smith).")
    ],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Folder for the two key files.")] = Path("."),
    passphrase_env: PassphraseEnvOption = None,
) -> None:
    """Create an IG officer's Ed25519 signing key pair; the private key is encrypted with a passphrase."""
    from ig_policies.signing import create_officer_key

    passphrase = read_passphrase(passphrase_env, "Passphrase for the new private key", confirm=True)
    files = create_officer_key(out_dir / f"{name}.key.pem", out_dir / f"{name}.pub.pem", passphrase)
    say(f"Key id: {files.key_id}")
    say(
        "Keep the private key and its passphrase to yourself. Give the public key to the TRE operator, "
        f"who trusts it with: ehl keys trust {files.public_key} --officer {name} --trust-store FILE"
    )
    print_outputs([("private key (encrypted)", files.private_key), ("public key", files.public_key)])


@app.command("trust")
@handle_errors
def trust_key(
    public_key: Annotated[Path, typer.Argument(help="The officer's public key file (from 'ehl keys new').")],
    officer: Annotated[str, typer.Option("--officer", help="Who holds the key, as shown when verifying.")],
    trust_store: Annotated[
        Path, typer.Option("--trust-store", help="Trust store file (created if missing).")
    ],
    note: Annotated[str, typer.Option("--note", help="Optional note, e.g. the approval reference.")] = "",
) -> None:
    """Add an IG officer's public key to a trust store: policies signed with it will be accepted."""
    from ig_policies.signing import add_trusted_key

    kid = add_trusted_key(trust_store, public_key, officer, note)
    say(f"Trusted key {kid} of {officer}.")
    print_outputs([("trust store", trust_store)])


@app.command("master-new")
@handle_errors
def master_new(
    out: Annotated[Path, typer.Option("--out", help="Where to write the encrypted master key file.")],
    passphrase_env: PassphraseEnvOption = None,
) -> None:
    """Create the service's master key file (random secret, encrypted with a passphrase)."""
    from ig_policies.master_secret import MasterSecretError, create_master_key_file

    if out.exists():
        raise ConfigError(
            f"{out} already exists", hint="a master key is never overwritten: choose another path"
        )
    passphrase = read_passphrase(passphrase_env, "Passphrase for the master key file", confirm=True)
    try:
        path = create_master_key_file(out, passphrase)
    except MasterSecretError as exc:
        raise ConfigError(str(exc)) from None
    say(
        "Point the service at it with EHL_MASTER_KEY_FILE and EHL_MASTER_KEY_PASSPHRASE. Losing it makes "
        "existing pseudonyms and the audit log's authentication unrecoverable: keep a protected backup."
    )
    print_outputs([("master key file", path)])
