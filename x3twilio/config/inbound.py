"""The `inbound:` section: webhooks, voicemail, and where replies land in X3 (notes)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from x3twilio.config.model import (
    DEFAULT_REFERENCES,
    NOTE_MODES,
    NOTE_PLACEHOLDERS,
    InboundConfig,
    NoteTarget,
)
from x3twilio.config.options import read
from x3twilio.sources import Source
from x3twilio.templates import TemplateError, compile_template
from x3twilio.x3.partners import PARTNER_KINDS
from x3twilio.yamlnode import Node


def load_inbound(node: Node, sources: Mapping[str, Source]) -> InboundConfig:
    references = dict(DEFAULT_REFERENCES)
    refs = node.child("references")
    for source, pattern in node.items("references"):
        try:
            re.compile(refs.get(source, str))
        except re.error as exc:
            raise refs.error(source, f"not a valid regular expression: {exc}") from None
        references[source] = pattern
    inbound = InboundConfig(
        max_body=read(node, InboundConfig, "max_body"),
        voice_prompt=read(node, InboundConfig, "voice_prompt"),
        voice_goodbye=read(node, InboundConfig, "voice_goodbye"),
        voice_language=read(node, InboundConfig, "voice_language"),
        transcription_wait=read(node, InboundConfig, "transcription_wait"),
        phone_index_ttl=read(node, InboundConfig, "phone_index_ttl"),
        references=references,
        notes=_load_notes(node, sources),
        catch_all=_load_catch_all(node) if node.has("catch_all") else None,
    )
    node.done()
    return inbound


def _load_notes(node: Node, sources: Mapping[str, Source]) -> tuple[NoteTarget, ...]:
    items = node.get("notes", list, [])
    return tuple(
        _load_note(Node(node.file, node.where("notes") + f"[{i}]", item), sources)
        for i, item in enumerate(items)
    )


def _load_note(node: Node, sources: Mapping[str, Source]) -> NoteTarget:
    on = node.get("about", str)
    if on not in (*PARTNER_KINDS, "partner") and on not in sources:
        known = ", ".join(["supplier", "customer", "partner", *sorted(sources)])
        raise node.error("about", f"expected whom or what the reply is about: one of {known}")
    mode = node.get("mode", str)
    if mode not in NOTE_MODES:
        raise node.error("mode", "expected append (a line in a text field) or create (a record)")
    fields_node, fields = node.child("fields"), {}
    for code, text in node.items("fields"):
        try:
            fields[code] = compile_template(str(text), dict.fromkeys(NOTE_PLACEHOLDERS, "text"))
        except TemplateError as exc:
            raise fields_node.error(code, str(exc)) from None
    max_length = read(node, NoteTarget, "max_length")
    note = NoteTarget(
        on=on,
        mode=mode,
        x3_class=node.get("class", str, None),
        representation=node.get("representation", str, None),
        text_field=node.get("field", str, None),
        max_length=max_length,
        fields=fields,
        marker=next((code for code, t in fields.items() if t.text == "{sid}"), None),
    )
    if mode == "append" and not note.text_field:
        raise node.error("field", "mode append needs the text field to append to")
    if mode == "append" and fields:
        raise node.error("fields", "fields go with mode create; append writes one field")
    if mode == "create" and not (note.x3_class and note.marker):
        raise node.error(
            "fields",
            "mode create needs class, and fields with one field "
            "set to exactly {sid} (it keeps a reply from being logged twice)",
        )
    node.done()
    return note


def _load_catch_all(node: Node) -> tuple[str, str]:
    catch = node.child("catch_all")
    kind = catch.get("kind", str)
    if kind not in ("supplier", "customer"):
        raise catch.error("kind", "expected supplier or customer")
    result = (kind, catch.get("code", str))
    catch.done()
    return result
