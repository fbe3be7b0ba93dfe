"""signxml's ``XMLVerifier``, adapted to the tree :func:`~.xml.parse_xml` parsed.

:mod:`~.signature` decides which keys and algorithms a signature may use and
what it must cover; this module only makes signxml's verification cheaper
without changing its result. signxml is handed the hardened tree instead of
re-parsing it, its lookups of direct children become child walks, its
Reference URI XPath is compiled once, and the document root it already
copied is canonicalized without a second copy. ``tests/test_signature_lookups.py``
compares every such lookup and canonicalization with signxml's own; every
check, transform and cryptographic step is still signxml's.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from typing import Any

from cryptography import x509
from lxml import etree
from signxml import XMLVerifier
from signxml.algorithms import CanonicalizationMethod
from signxml.algorithms import SignatureConstructionMethod
from signxml.util import _remove_sig
from signxml.util import namespaces as signxml_namespaces

from .xml import element_xpath
from .xml import qname

__all__ = ["ParsedTreeVerifier", "thread_verifier"]

_INCLUSIVE_NAMESPACES = qname(signxml_namespaces["ec"], "InclusiveNamespaces")
#: Holds this thread's verifier (``.verifier``); see :func:`thread_verifier`.
_thread_verifiers = threading.local()
#: The Transform algorithms signxml applies as a canonicalization.
_C14N_METHODS = frozenset(method.value for method in CanonicalizationMethod)
_BASE64_TRANSFORM = "http://www.w3.org/2000/09/xmldsig#base64"
#: A name without a prefix, predicate or path step.
_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


class ParsedTreeVerifier(XMLVerifier):
    """signxml's verifier, given the tree :func:`~.xml.parse_xml` already parsed.

    signxml would serialize and re-parse an element handed to it; it never
    mutates the root (it works on copies), so the hardened parse is reused.
    """

    def get_root(self, data: Any) -> etree._Element:
        if isinstance(data, etree._Element):
            return data
        return super().get_root(data)  # pragma: no cover - we always pass a tree

    # signxml looks up each ds:* child with ElementPath and a namespace map,
    # about 3 us a lookup and a dozen lookups a verification. A lookup of one
    # direct child by name has the same result as a walk of the children
    # filtered by tag, done in C; anything else still goes to signxml.

    def _find(
        self, element: etree._Element, query: str, require: bool = True, xpath: str = ""
    ) -> etree._Element | None:
        tag = _child_tag(query, xpath) if isinstance(element, etree._Element) else None
        if tag is None:
            return super()._find(element, query, require=require, xpath=xpath)
        for child in element.iterchildren(tag):
            return child
        if require:  # signxml raises its own InvalidInput, with its message
            return super()._find(element, query, require=require, xpath=xpath)
        return None

    def _findall(
        self, element: etree._Element, query: str, xpath: str = ""
    ) -> list[etree._Element]:
        tag = _child_tag(query, xpath) if isinstance(element, etree._Element) else None
        if tag is None:
            return super()._findall(element, query, xpath=xpath)
        return list(element.iterchildren(tag))

    def _get_inclusive_ns_prefixes(self, transform_node: etree._Element) -> list[str] | None:
        # signxml: ./ec:InclusiveNamespaces[@PrefixList], by ElementPath.
        for node in transform_node.iterchildren(_INCLUSIVE_NAMESPACES):
            prefixes = node.get("PrefixList")
            if prefixes is not None:
                return prefixes.split(" ")
        return None

    def _resolve_reference(
        self,
        doc_root: etree._Element,
        reference: etree._Element,
        uri_resolver: Callable[[str], Any] | None = None,
    ) -> Any:  # an element, or whatever uri_resolver returns
        # signxml compiles //*[@*[local-name() = 'ID']=$uri] on every call;
        # the same expression is compiled once here. Only an unambiguous hit
        # is answered: misses, duplicates and other URIs go to signxml.
        uri = reference.get("URI")
        if self.id_attributes == ("ID",) and uri and uri[0] == "#" and "(" not in uri:
            found = _BY_ID(doc_root, uri=uri.lstrip("#"))
            if len(found) == 1:
                return found[0]
        return super()._resolve_reference(doc_root, reference, uri_resolver=uri_resolver)

    def _apply_transforms(
        self,
        payload: Any,
        *,
        transforms_node: etree._Element,  # None without ds:Transforms (signxml's annotation)
        signature: etree._Element,
    ) -> Any:
        # signxml serializes and re-parses the payload before canonicalizing
        # it, so that namespaces declared on its ancestors cannot leak into
        # the result. A document root has no ancestors, and a Reference to
        # the signed root gets the root of signxml's own fresh copy of the
        # document (_verify_reference): its one canonicalization is the same
        # bytes without that second parse, about 70 us. Any other shape
        # (a payload inside a document, no or several c14n transforms, a
        # base64 transform) goes to signxml unchanged.
        if not isinstance(payload, etree._Element) or payload.getparent() is not None:
            return super()._apply_transforms(
                payload, transforms_node=transforms_node, signature=signature
            )
        transforms = [] if transforms_node is None else self._findall(transforms_node, "Transform")
        algorithms = [transform.get("Algorithm") for transform in transforms]
        c14n = [t for t, a in zip(transforms, algorithms, strict=True) if a in _C14N_METHODS]
        if len(c14n) != 1 or _BASE64_TRANSFORM in algorithms:
            return super()._apply_transforms(
                payload, transforms_node=transforms_node, signature=signature
            )
        if SignatureConstructionMethod.enveloped.value in algorithms:
            _remove_sig(signature, idempotent=True)
        return self._c14n(
            payload,
            algorithm=CanonicalizationMethod(c14n[0].get("Algorithm")),
            inclusive_ns_prefixes=self._get_inclusive_ns_prefixes(c14n[0]),
        )

    def _get_cert_description(self, cert: x509.Certificate, cert_source: str) -> str:
        # Built on every verification, used only in error messages: once per
        # pinned certificate object (hashing a certificate costs more).
        key = (id(cert), cert_source)
        entry = _descriptions.get(key)
        if entry is None or entry[0] is not cert:
            if len(_descriptions) >= 256:
                _descriptions.clear()
            entry = _descriptions[key] = (cert, _DESCRIBER._get_cert_description(cert, cert_source))
        return entry[1]


@functools.lru_cache(maxsize=64)
def _child_tag(query: str, xpath: str) -> str | None:
    """The Clark tag signxml's ``_find(element, query, xpath=xpath)`` selects
    among direct children, or ``None`` when the query is more than that."""
    if xpath not in ("", "./"):
        return None
    prefix, _, name = query.rpartition(":")
    namespace = signxml_namespaces.get(prefix or "ds")
    if namespace is None or not _NCNAME.fullmatch(name):
        return None
    return qname(namespace, name)


#: signxml's same-document reference lookup with ``id_attribute="ID"``.
_BY_ID = element_xpath("//*[@*[local-name() = 'ID']=$uri]")
#: signxml's own verifier, only to describe certificates the way it does.
_DESCRIBER = XMLVerifier()
_descriptions: dict[tuple[int, str], tuple[x509.Certificate, str]] = {}


def thread_verifier() -> ParsedTreeVerifier:
    """This thread's :class:`ParsedTreeVerifier`."""
    # XMLVerifier keeps per-call state on the instance: one per thread.
    verifier = getattr(_thread_verifiers, "verifier", None)
    if verifier is None:
        verifier = _thread_verifiers.verifier = ParsedTreeVerifier()
    return verifier
