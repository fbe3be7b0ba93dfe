"""Coverage-guided fuzzing of :class:`AssertionVerifier` (atheris / libFuzzer).

Usage::

    pip install atheris
    python fuzz/fuzz_verifier.py -max_total_time=60            # coverage-guided
    python fuzz/fuzz_verifier.py -max_total_time=60 fuzz/corpus  # keep a corpus
    python fuzz/fuzz_verifier.py --random -max_total_time=60   # no atheris needed

Each input is decoded as ``mode byte + payload``:

* mode 0: the payload is the XML, given to ``verify_xml``;
* mode 1: the payload is the ``assertion`` parameter, given to ``verify``;
* mode 2/3: the payload splices bytes into one of several validly signed seed
  assertions (mode 3 then Base64-encodes it), so the fuzzer starts deep in the
  pipeline (signature and section 3 checks) rather than at the parser.

A finding is any exception other than :class:`AssertionRejected` (the grant
would report it as ``verification_error``) or an *accepted* assertion whose
signed content differs from the seed it came from.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import sys
import tempfile
import time
from datetime import datetime
from datetime import timezone

try:
    import atheris
except ImportError:  # the plain random-mutation mode still works
    atheris = None

_instrument = atheris.instrument_imports() if atheris else contextlib.nullcontext()
with _instrument:
    from lxml import etree

    from authlib_saml2_grant.errors import AssertionRejected
    from authlib_saml2_grant.testing import TestIdentityProvider
    from authlib_saml2_grant.testing import encode_assertion
    from authlib_saml2_grant.verifier import AssertionVerifier
    from authlib_saml2_grant.xml import DS_NS

AUDIENCE = "https://as.example.com"
RECIPIENT = "https://as.example.com/oauth/token"
IDP = TestIdentityProvider("https://idp.example.com")
EC_IDP = TestIdentityProvider("https://ec-idp.example.com", key_type="ec")
VERIFIER = AssertionVerifier(
    [IDP.identity_provider, EC_IDP.identity_provider],
    audiences=[AUDIENCE],
    recipients=[RECIPIENT],
)
NOW = datetime.now(timezone.utc)


def _seed(idp, **fields) -> bytes:
    fields.setdefault("audience", AUDIENCE)
    fields.setdefault("recipient", RECIPIENT)
    fields.setdefault("issue_instant", NOW)
    return idp.mint_xml(**fields)


SEEDS = [
    _seed(IDP),
    _seed(IDP, attributes={"groups": ["a", "b"], "mail": "alice@example.com"}),
    _seed(IDP, audience=[[AUDIENCE], [AUDIENCE, "https://x"]], one_time_use=True),
    _seed(EC_IDP, authn_statement=False),
    _seed(IDP, nsmap={None: "urn:oasis:names:tc:SAML:2.0:assertion"}),
]


def _signed_content(xml: bytes) -> bytes:
    root = etree.fromstring(xml.lstrip(b"\xef\xbb\xbf"))
    for signature in root.findall(f"{{{DS_NS}}}Signature"):
        root.remove(signature)
    return etree.tostring(root, method="c14n", exclusive=True, with_comments=False)


SIGNED = [_signed_content(seed) for seed in SEEDS]


def _splice(data: bytes) -> tuple[bytes, int]:
    """Seed index, position and length from the first bytes; the rest is inserted."""
    if len(data) < 5:
        return SEEDS[0], 0
    index = data[0] % len(SEEDS)
    seed = SEEDS[index]
    position = int.from_bytes(data[1:3], "big") % (len(seed) + 1)
    cut = data[3] % 16
    return seed[:position] + data[4:] + seed[position + cut :], index


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode, payload = data[0] % 4, data[1:]
    seed_index = None
    try:
        if mode == 0:
            verified = VERIFIER.verify_xml(payload, now=NOW)
            xml = payload
        elif mode == 1:
            text = payload.decode("latin-1")
            verified = VERIFIER.verify(text, now=NOW)
            xml = None
        else:
            xml, seed_index = _splice(payload)
            if mode == 2:
                verified = VERIFIER.verify_xml(xml, now=NOW)
            else:
                verified = VERIFIER.verify(encode_assertion(xml), now=NOW)
    except AssertionRejected:
        return
    # Accepted: it must be one of the seeds, unchanged where it is signed.
    content = _signed_content(xml) if xml is not None else None
    if content is not None and content not in SIGNED:
        raise AssertionError(f"accepted a modified assertion: {xml[:300]!r}")
    if seed_index is not None and content != SIGNED[seed_index]:
        raise AssertionError(f"accepted content of another seed: {xml[:300]!r}")
    assert verified.subject == "alice@example.com", verified


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if not buf or choice < 0.3:
            buf[rng.randint(0, len(buf)) : rng.randint(0, len(buf))] = rng.choice(
                [b"<!---->", b"<x/>", b"<?p?>", b"&#0;", b"\xff", b"<![CDATA[", b"]]>", b"="]
                + [bytes([rng.randint(0, 255)])]
            )
        elif choice < 0.6:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randint(0, 7)
        elif choice < 0.8:
            start = rng.randrange(len(buf))
            del buf[start : start + rng.randint(1, 16)]
        else:
            start = rng.randrange(len(buf))
            piece = buf[start : start + rng.randint(1, 64)]
            at = rng.randint(0, len(buf))
            buf[at:at] = piece
    return bytes(buf)


def random_mode(argv: list[str]) -> None:
    """Plain random mutation, for machines without atheris."""
    seconds, seed = 60.0, int(time.time())
    for arg in argv:
        if arg.startswith("-max_total_time="):
            seconds = float(arg.split("=", 1)[1])
        elif arg.startswith("-seed="):
            seed = int(arg.split("=", 1)[1])
    rng = random.Random(seed)
    starts = [bytes([m]) + s for m in (0, 1) for s in SEEDS[:2]]
    starts += [bytes([1]) + base64.b64encode(s) for s in SEEDS]
    starts += [bytes([2, i, 0, 0, 0]) for i in range(len(SEEDS))]
    deadline, runs = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        test_one_input(_mutate(rng, rng.choice(starts)))
        runs += 1
    print(f"random mode: {runs} runs in {seconds:.0f} s (seed {seed}), no findings")


def main() -> None:
    argv = sys.argv[1:]
    if "--random" in argv or atheris is None:
        if atheris is None:
            print("atheris is not installed: plain random-mutation mode")
        random_mode([a for a in argv if a != "--random"])
        return
    corpora = [a for a in argv if not a.startswith("-")]
    if not corpora:  # start from the signed seeds, not from empty input
        argv.append(_seed_corpus(tempfile.mkdtemp(prefix="saml2-fuzz-")))
    else:
        _seed_corpus(corpora[0])
    atheris.Setup([sys.argv[0], *argv], test_one_input)
    atheris.Fuzz()


def _seed_corpus(directory: str) -> str:
    """Write the seeds (as raw XML, Base64 parameter and splices) into ``directory``."""
    os.makedirs(directory, exist_ok=True)
    for index, seed in enumerate(SEEDS):
        entries = {
            "xml": bytes([0]) + seed,
            "param": bytes([1]) + encode_assertion(seed).encode(),
            "splice": bytes([2, index, 0, 0, 0]),
        }
        for kind, data in entries.items():
            with open(os.path.join(directory, f"seed-{index}-{kind}"), "wb") as handle:
                handle.write(data)
    return directory


if __name__ == "__main__":
    main()
