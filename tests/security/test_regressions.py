"""Regression tests for verifier bugs found by this suite and by fuzzing."""

from __future__ import annotations

import os
import threading
from datetime import datetime
from datetime import timezone

import pytest
from lxml import etree

from authlib_saml2_grant.errors import AssertionRejected
from authlib_saml2_grant.xml import parse_xml

from ..helpers import assert_rejected
from ..helpers import mint_tree
from ..helpers import send


def _parse_in_thread(data: bytes, timeout: float = 5.0):
    outcome = {}

    def run():
        try:
            outcome["root"] = parse_xml(data)
        except AssertionRejected as exc:
            outcome["reason"] = exc.reason

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return thread, outcome


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize(
    "template",
    [
        '<!DOCTYPE a SYSTEM "{path}"><a/>',
        '<!DOCTYPE a PUBLIC "-//X//Y" "file://{path}"><a/>',
        '<!DOCTYPE a [<!ENTITY % p SYSTEM "file://{path}"> %p;]><a/>',
        '<?xml version="1.0" encoding="UTF-7"?>+ADwAIQ-DOCTYPE a SYSTEM +ACI-{path}+ACI-+AD4-<a/>',
    ],
    ids=["system", "public", "parameter-entity", "utf7-spelled"],
)
def test_doctype_never_opens_local_files(tmp_path, template):
    """Bug: libxml2 opened the file named by an external subset or parameter entity
    although the parser had ``load_dtd=False`` and ``resolve_entities=False`` (the
    reason was ``xml_malformed``: "Content error in the external subset (passwd)"),
    and a declared UTF-7 encoding could spell the DOCTYPE without a "<" byte.

    A named pipe with no writer blocks whoever opens it: if the parser opened it,
    the parse would hang (SECURITY.md step 3: no DTD loading, reject any DOCTYPE)."""
    fifo = tmp_path / "dtd.fifo"
    os.mkfifo(fifo)
    thread, outcome = _parse_in_thread(template.format(path=fifo).encode())
    if thread.is_alive():  # unblock the parser before failing
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(5)
        pytest.fail("the parser opened the file named in the DOCTYPE")
    assert outcome.get("reason") in ("doctype_forbidden", "xml_malformed")
    if "UTF-7" not in template:
        assert outcome["reason"] == "doctype_forbidden"


def test_external_dtd_to_real_file_is_doctype_forbidden(client, idp, reasons):
    """Before the fix the reason was ``xml_malformed`` because /etc/passwd had been
    read and failed to parse as a DTD."""
    xml = b'<!DOCTYPE saml:Assertion SYSTEM "file:///etc/passwd">' + etree.tostring(mint_tree(idp))
    assert_rejected(*send(client, xml), reasons, "doctype_forbidden")


@pytest.mark.parametrize("field", ["not_on_or_after", "confirmation_not_on_or_after"])
def test_not_on_or_after_year_9999_is_lifetime_too_long(client, idp, reasons, field):
    """Bug: ``now >= NotOnOrAfter + skew`` overflowed for 9999-12-31T23:59:59Z and the
    OverflowError surfaced as ``verification_error`` instead of a time reason.
    An IdP-signed far-future expiry is simply too long a lifetime (SECURITY.md step 7)."""
    fields = {field: datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)}
    assert_rejected(*send(client, mint_tree(idp, **fields)), reasons, "lifetime_too_long")
