"""``python -m benchmarks.profile``: where our verifier spends time beyond signxml.

Two views of the same RSA-2048 ~4 KB assertion:

1. stages, timed interleaved without a profiler: bare tuned signxml on the
   bytes, our ``verify`` (the request parameter), our ``verify_xml`` (the
   decoded bytes), and our decoding and hardened parsing alone;
2. cProfile of our ``verify``: the share inside signxml's ``XMLVerifier.verify``
   and our own functions by self time (cProfile inflates Python-heavy code,
   so read the shares, and take the stage times for the absolute cost).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

from signxml import XMLVerifier
from signxml.algorithms import SignatureMethod

from authlib_saml2_grant.testing import encode_assertion
from authlib_saml2_grant.xml import decode_assertion
from authlib_saml2_grant.xml import parse_xml

from .harness import interleave
from .workload import Workload
from .workload import _tuned_config

__all__ = ["main"]

_PACKAGE = "authlib_saml2_grant"


def stages(workload: Workload, rounds: int) -> list[str]:
    xml = workload.saml_xml()
    param = encode_assertion(xml)
    certificate = workload.rsa_idp.certificate
    config = _tuned_config(SignatureMethod.RSA_SHA256)
    bare = XMLVerifier()
    ours = workload.verifier([workload.rsa_idp.identity_provider])
    stats = interleave(
        {
            "signxml tuned (bytes)": lambda: bare.verify(
                xml, x509_cert=certificate, id_attribute="ID", expect_config=config
            ),
            "ours: verify (parameter)": lambda: ours.verify(param),
            "ours: verify_xml (bytes)": lambda: ours.verify_xml(xml),
            "ours: decode_assertion": lambda: decode_assertion(param, 131_072),
            "ours: parse_xml": lambda: parse_xml(xml),
        },
        rounds,
        batch=5,
        time_cap=60.0,
    )
    medians = {name: value.median for name, value in stats.items()}
    base = medians["signxml tuned (bytes)"]
    lines = [
        f"{name:28s} p50 {value:8.1f} us  p99 {stats[name].p99:8.1f} us"
        for name, value in medians.items()
    ]
    total = medians["ours: verify (parameter)"] - base
    rest = medians["ours: verify_xml (bytes)"] - base
    lines += [
        "",
        f"our overhead over signxml: {total:7.1f} us = {total / base:6.1%}",
        f"  decoding the parameter:  {medians['ours: decode_assertion']:7.1f} us",
        f"  hardened parse:          {medians['ours: parse_xml']:7.1f} us "
        "(signxml no longer parses: it gets our tree)",
        f"  verify_xml - signxml:    {rest:7.1f} us (parse + structure, XPath, claims)",
    ]
    return lines


def profile(workload: Workload, calls: int, top: int) -> list[str]:
    param = workload.saml()
    ours = workload.verifier([workload.rsa_idp.identity_provider])
    ours.verify(param)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        ours.verify(param)
    profiler.disable()
    stats = pstats.Stats(
        profiler
    ).stats  # (file, line, name) -> (cc, nc, tottime, cumtime, callers)
    total = sum(entry[2] for entry in stats.values())
    signxml_cum = sum(
        entry[3]
        for (filename, _line, name), entry in stats.items()
        if name == "verify" and filename.endswith("signxml/verifier.py")
    )
    own = sorted(
        (
            (entry[2], entry[3], entry[1], name, filename.rsplit("/", 1)[-1], line)
            for (filename, line, name), entry in stats.items()
            if _PACKAGE in filename
        ),
        reverse=True,
    )
    lines = [
        f"cProfile, {calls} calls of AssertionVerifier.verify:",
        f"  total {total / calls * 1e6:8.1f} us/call (profiled)",
        f"  inside signxml XMLVerifier.verify {signxml_cum / calls * 1e6:8.1f} us/call "
        f"= {signxml_cum / total:.1%}",
        f"  outside signxml {(total - signxml_cum) / calls * 1e6:8.1f} us/call "
        f"= {(total - signxml_cum) / total:.1%}",
        "",
        f"  our functions by self time (C calls such as XPath count as the caller's), top {top}:",
    ]
    for tottime, cumtime, ncalls, name, filename, line in own[:top]:
        lines.append(
            f"  {tottime / calls * 1e6:7.1f} us self {cumtime / calls * 1e6:8.1f} us cum "
            f"{ncalls / calls:4.0f}x  {filename}:{line}({name})"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--rounds", type=int, default=400, help="interleaved rounds of 5 calls")
    parser.add_argument("--calls", type=int, default=3000, help="profiled calls")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    workload = Workload.create()
    print("\n".join(stages(workload, args.rounds)))
    print()
    print("\n".join(profile(workload, args.calls, args.top)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
