"""The verified assertion is a value: immutable, hashable, picklable, no XML kept;
and the verifier that makes it is stateless."""

from __future__ import annotations

import dataclasses
import gc
import pickle

import pytest
from lxml import etree

from authlib_saml2_grant import AssertionVerifier
from authlib_saml2_grant import Attributes
from authlib_saml2_grant import Claims
from authlib_saml2_grant import VerifiedAssertion

from .conftest import AUDIENCES
from .conftest import TOKEN_ENDPOINT
from .conftest import mint_for
from .conftest import request_token

ATTRIBUTES = {"groups": ["admins", "staff"], "mail": "alice@example.com"}


@pytest.fixture
def verifier(idp):
    return AssertionVerifier(
        [idp.identity_provider], audiences=AUDIENCES, recipients=[TOKEN_ENDPOINT]
    )


def reachable(root, depth=4):
    """Every object reachable from ``root`` through up to ``depth`` references."""
    seen, frontier = {id(root): root}, [root]
    for _ in range(depth):
        frontier = [r for o in frontier for r in gc.get_referents(o) if id(r) not in seen]
        seen.update((id(o), o) for o in frontier)
    return seen.values()


def test_verified_assertion_is_immutable_hashable_picklable(verifier, idp):
    """:rfc:`7522#section-3`: what the signed element said is fixed once verified;
    the result can be cached, queued or sent to another process."""
    assertion = verifier.verify(mint_for(idp, attributes=ATTRIBUTES))
    with pytest.raises(dataclasses.FrozenInstanceError):
        assertion.subject = "mallory@example.com"
    with pytest.raises(TypeError):
        assertion.attributes["mail"] = ("mallory@example.com",)
    copy = pickle.loads(pickle.dumps(assertion))
    assert copy == assertion
    assert hash(copy) == hash(assertion)
    assert {assertion, copy} == {assertion}
    assert copy.attributes["groups"] == ("admins", "staff")
    assert isinstance(copy.attributes, Attributes)


def test_verified_assertion_keeps_no_xml_tree(verifier, idp):
    """Values are read from the signed element and copied out: nothing of lxml's
    tree stays alive with the assertion."""
    assertion = verifier.verify(mint_for(idp, attributes=ATTRIBUTES))
    leaked = [o for o in reachable(assertion) if isinstance(o, etree._Element)]
    assert leaked == []
    plain = (str, bool, tuple, type(None), type(assertion.issue_instant), Attributes, Claims)
    assert all(isinstance(getattr(assertion, f.name), plain) for f in dataclasses.fields(assertion))


def test_verifier_is_stateless(verifier, idp):
    """Verification records nothing: the same assertion verifies twice to equal
    results (replay, :rfc:`7522#section-3` item 6, is the grant's business), and
    the verifier has no replay cache to consult."""
    encoded = mint_for(idp)
    first, second = verifier.verify(encoded), verifier.verify(encoded)
    assert first == second and first is not second
    assert not hasattr(verifier, "replay_cache")
    assert not any(hasattr(verifier, name) for name in ("consume", "commit_consumed"))


def test_attributes_mapping_semantics():
    """Attributes compare equal to a plain dict of tuples, keep document order, and
    merge a name repeated across Attribute elements."""
    attributes = Attributes([("mail", ["a@x"]), ("groups", ("a",)), ("groups", ["b"])])
    assert attributes == {"mail": ("a@x",), "groups": ("a", "b")}
    assert list(attributes) == ["mail", "groups"]
    assert len(attributes) == 2
    assert "Attributes(" in repr(attributes)
    assert Attributes() == {} and hash(Attributes()) == hash(Attributes([]))


def test_verified_assertion_accepts_a_plain_mapping(verifier, idp):
    """Built by hand (e.g. in a test), a dict of attributes becomes ``Attributes``,
    so the object stays hashable."""
    verified = verifier.verify(mint_for(idp))
    built = dataclasses.replace(verified, attributes={"mail": ("a@x",)})
    assert isinstance(built.attributes, Attributes)
    assert isinstance(hash(built), int)
    assert isinstance(built, VerifiedAssertion)


def test_grant_stores_the_value_on_the_request(client, idp, accepted):
    """:rfc:`7522#section-2.1`: the grant hands hooks and signals the same value."""
    status, body = request_token(client, mint_for(idp, attributes=ATTRIBUTES))
    assert status == 200, body
    assert pickle.loads(pickle.dumps(accepted[0])) == accepted[0]
