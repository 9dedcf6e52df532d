#!/usr/bin/env python3
"""Derives the compact semantic-conventions table the registry test reads.

Reads the YAML registry of `../shared/semconv/model` (both file formats: the classic `groups:`
and weaver's `file_format: definition/2`) and writes facts only, one per line, tab-separated:

    attr      KEY  TYPE  STABILITY  DEPRECATED  MEMBERS  CLOSED
    metric    NAME INSTRUMENT UNIT STABILITY DEPRECATED
    event     NAME STABILITY DEPRECATED
    required  DEFINITION  KEY,KEY,...
    conditional DEFINITION KEY,KEY,...
    attributes  DEFINITION KEY,KEY,...

- TYPE: string, int, double, boolean, string[] ..., `template[T]` (KEY is then a prefix
  `KEY.<suffix>`), `enum[string]` / `enum[int]` for member types.
- DEPRECATED: `-` when not deprecated; else `renamed:<key>` or the reason (`obsoleted`,
  `uncategorized`).
- MEMBERS: `-`, or an enum's values (comma-separated), deprecated members marked with a leading
  `~`; none for the keys of UNLISTED_ENUMS below (their values are by definition the
  instrumented thing's own: `error.type` is the error's type name).
- CLOSED: `closed` when the enum has the catch-all member `_OTHER` (a value outside the list
  MUST be sent as `_OTHER`: nothing else is valid), `open` for the other enums (the registry
  lists well-known values; others are allowed), `-` for non-enums.
- `required`: the attributes whose requirement level is `required` (unconditionally) in the
  resolved definition (its `extends` chain, `ref_group`s and refinements applied), for the span,
  metric and entity definitions in DEFINITIONS; `conditional`: those `conditionally_required`
  there (the test requires the ones whose condition always holds for this project);
  `attributes`: every attribute of the resolved definition, whatever its level.

Usage (from the project root; PyYAML needed: `python3 -m venv /tmp/v && /tmp/v/bin/pip install
pyyaml`):

    python3 scripts/semconv-table.py [../shared/semconv] > examples/tests/data/semconv-table.tsv
"""

import os
import re
import sys

import yaml

# The definitions whose required attributes the test checks.
DEFINITIONS = [
    "span.http.server",
    "span.http.client",
    "metric.http.server.request.duration",
    "metric.http.server.active_requests",
    "metric.http.client.request.duration",
    "span.rpc.call.server",
    "span.rpc.call.client",
    "span.rpc.grpc.call.server",
    "span.rpc.grpc.call.client",
    "metric.rpc.server.call.duration",
    "metric.rpc.client.call.duration",
    "messaging.send.producer",
    "messaging.process.consumer",
    "metric.messaging.client.operation.duration",
    "metric.messaging.process.duration",
    "entity.service",
    "event.exception",
]

# Enums whose values are the instrumented thing's own (the table lists no members for them).
UNLISTED_ENUMS = {"error.type"}


def load(root):
    docs = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".yaml") and name != "manifest.yaml":
                with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                    doc = yaml.safe_load(f)
                if isinstance(doc, dict):
                    docs.append(doc)
    return docs


def type_of(t):
    if isinstance(t, dict) or t == "enum":
        return None  # an enum: decided from its members
    return str(t)


def deprecated_of(d):
    dep = d.get("deprecated")
    if not dep:
        return "-"
    if isinstance(dep, dict):
        if dep.get("reason") == "renamed" and dep.get("renamed_to"):
            return "renamed:" + str(dep["renamed_to"])
        return str(dep.get("reason", "deprecated"))
    return "deprecated"


def enum_fields(key, t):
    members = t.get("members", []) if isinstance(t, dict) else []
    values = [m.get("value") for m in members]
    kind = "int" if values and all(isinstance(v, int) for v in values) else "string"
    if key in UNLISTED_ENUMS:
        return kind, "-", "-"
    shown = [("~" if m.get("deprecated") else "") + str(m.get("value")) for m in members]
    closed = "closed" if "_OTHER" in values else "open"
    return "enum[" + kind + "]", ",".join(shown) if shown else "-", closed


def main():
    base = sys.argv[1] if len(sys.argv) > 1 else os.path.join("..", "shared", "semconv")
    model = os.path.join(base, "model")
    docs = load(model)

    attrs, metrics, events = {}, {}, {}
    groups = {}  # id -> group dict (classic groups, definition/2 attribute groups, spans, ...)

    def add_attr(key, d):
        t = d.get("type")
        ty = type_of(t)
        members, closed = "-", "-"
        if ty is None:
            ty, members, closed = enum_fields(key, t if isinstance(t, dict) else {"members": d.get("members", [])})
        attrs[key] = (ty, d.get("stability", "-"), deprecated_of(d), members, closed)

    for doc in docs:
        for g in doc.get("groups", []) or []:
            groups[g["id"]] = g
            gtype = g.get("type")
            if gtype == "attribute_group" and g["id"].startswith("registry."):
                for a in g.get("attributes", []):
                    if "id" in a:
                        add_attr(a["id"], a)
            elif gtype == "metric":
                metrics[g["metric_name"]] = (
                    g.get("instrument", "-"), g.get("unit", "-"),
                    g.get("stability", "-"), deprecated_of(g))
            elif gtype == "event":
                events[g["name"]] = (g.get("stability", "-"), deprecated_of(g))
            # Classic registry groups may also define attributes outside `registry.*` ids.
            if gtype == "attribute_group" and not g["id"].startswith("registry."):
                for a in g.get("attributes", []):
                    if "id" in a and a["id"] not in attrs:
                        add_attr(a["id"], a)
        for a in doc.get("attributes", []) or []:
            add_attr(a["key"], a)
        for g in doc.get("attribute_groups", []) or []:
            groups[g["id"]] = g
        for s in doc.get("spans", []) or []:
            groups[s["type"]] = s
        for r in doc.get("span_refinements", []) or []:
            groups[r["id"]] = dict(r, extends=r.get("ref"))
        for m in doc.get("metrics", []) or []:
            groups["metric." + m["name"]] = m
            metrics[m["name"]] = (
                m.get("instrument", "-"), m.get("unit", "-"),
                m.get("stability", "-"), deprecated_of(m))
        for r in doc.get("metric_refinements", []) or []:
            groups[r["id"]] = dict(r, extends="metric." + str(r.get("ref")))
        for e in doc.get("events", []) or []:
            groups["event." + e["name"]] = e
            events[e["name"]] = (e.get("stability", "-"), deprecated_of(e))

    def resolve(gid, seen=()):
        """key -> requirement level of a definition, parents first, own refs last."""
        g = groups.get(gid)
        if g is None or gid in seen:
            raise SystemExit(f"semconv-table: unknown or cyclic definition {gid!r}")
        out = {}
        if g.get("extends"):
            out.update(resolve(g["extends"], seen + (gid,)))
        for a in g.get("attributes", []) or []:
            if "ref_group" in a:
                out.update(resolve(a["ref_group"], seen + (gid,)))
            else:
                key = a.get("ref") or a.get("id") or a.get("key")
                if "requirement_level" in a or key not in out:
                    out[key] = a.get("requirement_level", "recommended")
        return out

    commit = "unknown"
    readme = os.path.join(base, "README.md")
    if os.path.exists(readme):
        m = re.search(r"at commit\s+`([0-9a-f]+)`", open(readme, encoding="utf-8").read())
        if m:
            commit = m.group(1)
    schema = next((d["schema_url"] for d in docs if "schema_url" in d), None)
    if schema is None:
        with open(os.path.join(model, "manifest.yaml"), encoding="utf-8") as f:
            schema = yaml.safe_load(f).get("schema_url", "-")

    out = sys.stdout
    out.write("# Semantic-conventions facts for examples/tests/semconv_registry.rs (generated).\n")
    out.write(f"# Source: ../shared/semconv/model, open-telemetry/semantic-conventions commit {commit}"
              f" (schema_url {schema}).\n")
    out.write("# Regenerate: python3 scripts/semconv-table.py > examples/tests/data/semconv-table.tsv\n")
    out.write("# Format: see scripts/semconv-table.py. Do not edit by hand.\n")
    out.write(f"snapshot\t{commit}\t{schema}\n")
    for key in sorted(attrs):
        out.write("attr\t" + key + "\t" + "\t".join(attrs[key]) + "\n")
    for name in sorted(metrics):
        out.write("metric\t" + name + "\t" + "\t".join(metrics[name]) + "\n")
    for name in sorted(events):
        out.write("event\t" + name + "\t" + "\t".join(events[name]) + "\n")
    for gid in DEFINITIONS:
        required = sorted(k for k, lvl in resolve(gid).items() if lvl == "required")
        out.write("required\t" + gid + "\t" + (",".join(required) or "-") + "\n")
    for gid in DEFINITIONS:
        conditional = sorted(k for k, lvl in resolve(gid).items()
                             if isinstance(lvl, dict) and "conditionally_required" in lvl)
        out.write("conditional\t" + gid + "\t" + (",".join(conditional) or "-") + "\n")
    for gid in DEFINITIONS:
        out.write("attributes\t" + gid + "\t" + (",".join(sorted(resolve(gid))) or "-") + "\n")


if __name__ == "__main__":
    main()
