"""The space services' rules (services/spaces.py, credentials.py, currencies.py), for every
front end at once: the space name, token names, what a revocation ends, the currency list."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.services_env import Env, services
from xtracker_server.domain.credentials import CredentialKind, hash_secret
from xtracker_server.errors import api_error
from xtracker_server.services import (
    OPERATOR,
    Conflict,
    Invalid,
    NotFound,
    credentials,
    currencies,
    spaces,
)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with services(tmp_path) as found:
        yield found


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_a_space_name_is_1_to_100_characters(env: Env, name: str) -> None:
    with pytest.raises(Invalid) as refused:
        env.run(spaces.create_space(OPERATOR, env.ctx, name))
    assert refused.value.problems == (("name", "must be 1 to 100 characters"),)
    assert env.run(spaces.list_spaces(OPERATOR, env.ctx)) == []


def test_a_space_name_is_trimmed(env: Env) -> None:
    created = env.run(spaces.create_space(OPERATOR, env.ctx, "  " + "x" * 100 + " "))
    assert created.space.name == "x" * 100
    assert created.bearer.startswith("xt_sk_") and created.ingest_token.startswith("xt_it_")


def test_token_binds_can_be_turned_off_and_on(env: Env) -> None:
    space_id = env.space().space.id
    assert env.run(spaces.token_binds(OPERATOR, env.ctx, space_id)) is True
    assert env.run(spaces.set_token_binds(OPERATOR, env.ctx, space_id, False)) is False
    assert env.run(spaces.token_binds(OPERATOR, env.ctx, space_id)) is False


def test_only_ingest_tokens_have_names(env: Env) -> None:
    space_id = env.space().space.id
    with pytest.raises(Invalid) as refused:
        env.run(credentials.rotate(OPERATOR, env.ctx, space_id, CredentialKind.BEARER, "adcombo"))
    assert refused.value.field == "name"
    with pytest.raises(Invalid):
        env.run(
            credentials.revoke_previous(
                OPERATOR, env.ctx, space_id, CredentialKind.BEARER, "adcombo"
            )
        )
    # the admin API says how to ask for an ingest token, as it did
    assert api_error(refused.value).detail == (
        'name: only ingest tokens have names: add "kind": "ingest"'
    )


def test_a_rotation_names_the_token_checked_and_lower_cased(env: Env) -> None:
    space_id = env.space().space.id
    env.run(credentials.add_ingest_token(OPERATOR, env.ctx, space_id, "AdCombo "))
    rotation = env.run(
        credentials.rotate(OPERATOR, env.ctx, space_id, CredentialKind.INGEST, " ADCOMBO")
    )
    assert (rotation.name, rotation.kind) == ("adcombo", CredentialKind.INGEST)
    with pytest.raises(Invalid) as bad:
        env.run(credentials.rotate(OPERATOR, env.ctx, space_id, CredentialKind.INGEST, "-x"))
    assert bad.value.field == "name"


def test_rotating_a_token_the_space_lacks_is_not_found(env: Env) -> None:
    space_id = env.space().space.id
    with pytest.raises(NotFound) as missing:
        env.run(credentials.rotate(OPERATOR, env.ctx, space_id, CredentialKind.INGEST, "nope"))
    assert (missing.value.what, missing.value.key) == ("token", "nope")
    assert api_error(missing.value).detail == (
        f"space {space_id} has no ingest token named 'nope': see GET /admin/spaces/{space_id}"
        "/tokens, or add one with POST"
    )


def test_a_token_name_is_taken_while_its_token_lives(env: Env) -> None:
    space_id = env.space().space.id
    env.run(credentials.add_ingest_token(OPERATOR, env.ctx, space_id, "adcombo"))
    with pytest.raises(Conflict) as taken:
        env.run(credentials.add_ingest_token(OPERATOR, env.ctx, space_id, "ADCOMBO"))
    assert (taken.value.code, taken.value.key) == ("token_name_taken", "adcombo")
    assert api_error(taken.value).status == 409
    env.run(credentials.revoke_ingest_token(OPERATOR, env.ctx, space_id, " AdCombo "))
    again = env.run(credentials.add_ingest_token(OPERATOR, env.ctx, space_id, "adcombo"))
    assert again.name == "adcombo"


def test_a_revocation_tells_the_process_which_secrets_ended(env: Env) -> None:
    space = env.space()
    space_id = space.space.id
    token = env.run(credentials.add_ingest_token(OPERATOR, env.ctx, space_id, "adcombo"))
    revoked = env.run(credentials.revoke_ingest_token(OPERATOR, env.ctx, space_id, "adcombo"))
    assert env.heard.calls == [("credentials_ended", (hash_secret(token.secret),))]
    assert revoked.revoked == 1
    rotation = env.run(credentials.rotate(OPERATOR, env.ctx, space_id, CredentialKind.BEARER))
    ended = env.run(credentials.revoke_previous(OPERATOR, env.ctx, space_id, CredentialKind.BEARER))
    assert ended.hashes == (hash_secret(space.bearer),)
    assert hash_secret(rotation.secret) not in ended.hashes
    assert env.heard.calls[-1] == ("credentials_ended", (hash_secret(space.bearer),))


def test_revoking_a_token_the_space_lacks_is_not_found_and_ends_nothing(env: Env) -> None:
    space_id = env.space().space.id
    with pytest.raises(NotFound) as missing:
        env.run(credentials.revoke_ingest_token(OPERATOR, env.ctx, space_id, "nope"))
    assert missing.value.what == "token"
    assert env.heard.calls == []


def test_the_admin_token_is_reset(env: Env) -> None:
    first = env.run(credentials.reset_admin_token(OPERATOR, env.ctx))
    second = env.run(credentials.reset_admin_token(OPERATOR, env.ctx))
    assert first != second and second.startswith("xt_admin_")


def test_currencies_are_replaced_or_changed(env: Env) -> None:
    space_id = env.space().space.id
    ctx = env.ctx
    assert env.run(currencies.set_currencies(OPERATOR, ctx, space_id, ["gems", "ABC"])) == (
        "ABC",
        "GEMS",
    )
    changed = currencies.change_currencies(
        OPERATOR, ctx, space_id, allow=["xyz", " "], remove=["abc "]
    )
    assert env.run(changed) == ("GEMS", "XYZ")
    assert env.run(currencies.currencies(OPERATOR, ctx, space_id)) == ("GEMS", "XYZ")
    with pytest.raises(Invalid) as bad:
        env.run(currencies.change_currencies(OPERATOR, ctx, space_id, allow=["no way"]))
    assert bad.value.field == "allowed"
    assert env.run(currencies.currencies(OPERATOR, ctx, space_id)) == ("GEMS", "XYZ")
