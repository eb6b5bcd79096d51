"""`check` against the customer's X3: is every field the configuration needs there?

api1 here; GraphQL feeds `source_check` the node as introspected (x3/gql_site.py).

Per source, for the partner look-ups and for each note target, the fields that keys, the
change stamp, rules, templates and recipients need are looked up in what X3 exposes
(x3/discover.py): present with a kind this tool can read, or missing with the override
to write. A rule on a raw code that X3 does not expose is a ✗ here, not a silent no-match.
"""

from __future__ import annotations

from typing import Any

from x3twilio.checks import Check
from x3twilio.config import Config, NoteTarget
from x3twilio.rules import needed
from x3twilio.sources import Source, exposure_fix
from x3twilio.x3.discover import COMPATIBLE, Describer, Exposed, Property, describe
from x3twilio.x3.partners import PARTNER_KINDS, PartnerShape


def site_checks(config: Config, client: Describer) -> list[Check]:
    checks = [source_check(config, s, _query_facet(client, s)) for s in config.used_sources()]
    kinds = partner_kinds(config)
    checks += [_partner_check(config.x3.partners[k], client) for k in kinds]
    checks += [_note_check(config, t, client) for t in config.inbound.notes]
    return checks


def _query_facet(client: Describer, source: Source) -> Exposed:
    return describe(client, source.x3_class, source.representation, "$query")


def source_check(config: Config, source: Source, exposed: Exposed) -> Check:
    """What `source` needs against what X3 exposes (api1's representation, or GraphQL's
    node as introspected): present with a kind this tool reads, or missing with the fix."""
    name = f"X3 {source.name} fields"
    where = exposed.label or f"{source.x3_class} ({source.representation}.$query, by {exposed.how})"
    if not exposed.properties:
        return Check(name, False, f"{where}: nothing to read", "check the class and representation")
    problems: dict[str, tuple[str, str]] = {}
    present: dict[str, str] = {}
    for code, kind, why in needed(source, config.rules):
        found = exposed.properties.get(code)
        if found is None:
            what, fix = exposed.missing.get(code) or exposure_fix(source, code)
            problems.setdefault(code, (f"does not expose {what} (needed by {why})", fix))
        elif kind and not _reads(kind, found):
            f = next((f for f in source.fields.values() if f.code == code), None)
            fix = f"set sources.{source.name}.fields.{f.name if f else code}.type"
            problems.setdefault(code, (f"{code} is {found.kind} here, read as {kind}", fix))
        else:
            present.setdefault(code, f"{code} {found.kind}")
    seen = "has " + ", ".join(present.values())
    if not problems:
        return Check(name, True, f"{where} {seen}")
    detail = f"{where}: " + "; ".join(p for p, _ in problems.values()) + f"; {seen}"
    return Check(name, False, detail, "; ".join(f for _, f in problems.values()), setup=True)


def _reads(kind: str, found: Property) -> bool:
    return found.kind == "?" or found.kind in COMPATIBLE.get(kind, {kind})


def partner_kinds(config: Config) -> list[str]:
    """The kinds of partner that rules text or mail, or that replies come from."""
    kinds: set[str] = set()
    for rule in config.rules:
        partner = config.sources[rule.source].partner
        if partner and any(r.kind == "partner" for r in rule.recipients):
            kinds |= {partner.kind} if partner.kind else set(PARTNER_KINDS)
    if config.inbound.notes:
        kinds |= set(PARTNER_KINDS)  # the phone book reads both to match a sender
    return [k for k in PARTNER_KINDS if k in kinds]


def _partner_check(shape: PartnerShape, client: Describer) -> Check:
    exposed = describe(client, shape.x3_class, shape.representation, "$details")
    name = f"X3 {shape.kind}s"
    where = f"{shape.x3_class} ({shape.representation}.$details, by {exposed.how})"
    missing, unknown = [], []
    for role in shape.roles:
        found = exposed.find(shape.path(role))
        if found is False:
            missing.append(role)
        elif found is None:
            unknown.append(role)
    mobile_paths = ("contact_mobile", "phone_number")
    if all(role in missing for role in mobile_paths):
        return Check(
            name,
            False,
            f"{where}: no mobile can be found: "
            + ", ".join(f"{r} ({'.'.join(shape.path(r))})" for r in missing),
            f"map them under x3.partners.{shape.kind}.fields "
            f"(`x3twilio x3 describe {shape.x3_class} --facet '$details'` lists what X3 exposes)",
            setup=True,
        )
    ways = [f"{r} ({'.'.join(shape.path(r))})" for r in mobile_paths if r not in missing]
    detail = f"{where}: mobiles from " + " and ".join(ways)
    if missing:
        detail += "; not exposed: " + ", ".join(missing)
    if unknown:
        detail += "; not seen in the sampled record: " + ", ".join(unknown)
    return Check(name, True, detail)


def _note_check(config: Config, target: NoteTarget, client: Describer) -> Check:
    x3_class, representation = target_class(config, target)
    name = f"X3 notes on {target.on}"
    if target.mode == "append":
        exposed = describe(client, x3_class, representation, "$edit")
        where = f"{x3_class} ({representation}.$edit, by {exposed.how})"
        found = exposed.properties.get(target.text_field or "")
        if found is None:
            return Check(
                name,
                False,
                f"{where} has no {target.text_field} to append replies to",
                "give inbound.notes a representation that exposes a text field, or use "
                "mode create with a class of your own",
                setup=True,
            )
        if found.read_only:
            return Check(
                name,
                False,
                f"{where}: {target.text_field} is read-only",
                "give inbound.notes a representation where the field can be edited",
                setup=True,
            )
        if found.max_length and found.max_length < target.max_length:
            return Check(
                name,
                False,
                f"{where}: {target.text_field} holds {found.max_length} characters",
                f"set max_length: {found.max_length}",
                setup=True,
            )
        return Check(name, True, f"replies append to {where} {target.text_field}")
    exposed = describe(client, x3_class, representation, "$query")
    where = f"{x3_class} ({representation}, by {exposed.how})"
    missing = [code for code in target.fields if code not in exposed.properties]
    if exposed.how == "no record to sample":
        return Check(name, True, f"{where}: empty, its fields cannot be checked until one exists")
    if missing:
        return Check(
            name,
            False,
            f"{where} has no " + ", ".join(missing),
            "correct inbound.notes fields",
            setup=True,
        )
    return Check(name, True, f"replies create records of {where}")


def target_class(config: Config, target: NoteTarget) -> tuple[str, str]:
    if target.on in config.sources:
        source = config.sources[target.on]
        base: tuple[str, str] = (source.x3_class, source.representation)
    else:
        shape = config.x3.partners["supplier" if target.on == "partner" else target.on]
        base = (shape.x3_class, shape.representation)
    x3_class = target.x3_class or base[0]
    return x3_class, target.representation or (base[1] if x3_class == base[0] else x3_class)


def describe_rows(exposed: Exposed) -> list[tuple[str, str, Any]]:
    """(name, kind, sample value as X3 sent it) for `x3 describe`."""
    return [(path, prop.kind, prop.sample) for path, prop in exposed.walk()]
