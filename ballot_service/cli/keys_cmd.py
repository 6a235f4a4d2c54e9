"""`ballot-service keys`: a body's signing key under the keys directory."""
from __future__ import annotations

import sys

import click

from ballot_service.cli.setup import db_session
from ballot_service.config import Settings
from ballot_service.crypto.keys import (
    body_key_name,
    body_passphrase,
    fingerprint,
    load_public_key,
    passphrase_variable,
    public_path,
)
from ballot_service.domain.sittings import create_body_key, get_body
from ballot_service.errors import KeyFileError


@click.group("keys", help="Signing keys (签名密钥), one per body, under BALLOT_KEYS_DIR.")
def keys() -> None:
    pass


@keys.command("create", help="Create the Ed25519 signing key of BODY_ID, encrypted with its own "
                             "passphrase (BALLOT_KEY_PASSPHRASE_BODY_<ID>, or the file passphrases/body-<ID> "
                             "in the instance folder) or else BALLOT_KEY_PASSPHRASE. Never overwrites an "
                             "existing key.")
@click.argument("body_id", type=int)
def keys_create(body_id: int) -> None:
    settings = Settings.from_env()
    name = body_key_name(body_id)
    passphrase = body_passphrase(settings, body_id)
    if not passphrase:
        click.echo(f"错误 error: no passphrase: set {passphrase_variable(name)} (this body's own) or "
                   f"BALLOT_KEY_PASSPHRASE to the passphrase that will protect the key, then run this again",
                   err=True)
        sys.exit(2)
    with db_session() as db:
        body = get_body(db, body_id)
        key = create_body_key(db, settings.keys_dir, passphrase, body)
    click.echo(f"key {name} created for body {body_id} ({body.name})")
    click.echo(f"  private: {settings.keys_dir / (name + '.key.pem')} (mode 0600, keep a backup)")
    click.echo(f"  public:  {settings.keys_dir / (name + '.pub.pem')}")
    click.echo(f"  fingerprint 指纹: {key.fingerprint}")


@keys.command("show", help="Show the public key path and fingerprint of BODY_ID's key.")
@click.argument("body_id", type=int)
def keys_show(body_id: int) -> None:
    settings = Settings.from_env()
    path = public_path(settings.keys_dir, body_key_name(body_id))
    try:
        pub = load_public_key(path)
    except KeyFileError as exc:
        click.echo(f"错误 error: {exc.message}", err=True)
        sys.exit(2)
    click.echo(f"public key: {path}")
    click.echo(f"fingerprint 指纹: {fingerprint(pub)}")


commands = [keys]
