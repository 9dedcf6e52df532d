#!/usr/bin/env python3
"""The public API of a crate, one line per item, from rustdoc's JSON output (nightly).

Usage: scripts/public-api.py DOC.json > api/CRATE.txt

Each line is `path kind` for what a user of the crate can name: modules, types, traits,
functions, constants, statics, macros, re-exports (local ones are followed, external ones are
listed by their source), public fields, enum variants, inherent methods and associated items,
and the trait impls a type declares (not the auto and blanket ones). Items under `#[doc(hidden)]`
(what sibling crates need and users are not offered) are not in rustdoc's output, so not here. Lines are sorted, so a
diff shows what was added or removed. Signatures are not listed: names and kinds are the
surface a change review must see (see scripts/public-api.sh)."""
import json
import sys

doc = json.load(open(sys.argv[1]))
index = doc["index"]
out = set()


def item(i):
    return index.get(str(i))


def kind_of(it):
    return next(iter(it["inner"]))


def type_name(t):
    """A short readable form of a rustdoc type (for trait impl lines)."""
    if t is None:
        return "?"
    k, v = next(iter(t.items()))
    if k == "resolved_path":
        return v["path"]
    if k == "generic":
        return v
    if k == "primitive":
        return v
    if k == "borrowed_ref":
        return "&" + type_name(v["type"])
    return k


def walk_impls(path, impls):
    for impl_id in impls:
        imp = item(impl_id)
        if imp is None:
            continue
        inner = imp["inner"]["impl"]
        if inner.get("is_synthetic") or inner.get("blanket_impl") is not None:
            continue
        if inner["trait"] is None:
            for sub in inner["items"]:
                it = item(sub)
                if it is not None and it["visibility"] == "public":
                    out.add(f"{path}::{it['name']} {kind_of(it)}")
        else:
            out.add(f"{path} impl {inner['trait']['path']}")


def walk(path, it, seen):
    if it is None or it["id"] in seen:
        return
    seen = seen | {it["id"]}
    kind = kind_of(it)
    inner = it["inner"][kind]
    if kind == "module":
        out.add(f"{path} module")
        for sub in inner["items"]:
            child = item(sub)
            if child is None or child["visibility"] != "public":
                continue
            if kind_of(child) == "use":
                use = child["inner"]["use"]
                target = item(use["id"]) if use.get("id") is not None else None
                if use["is_glob"]:
                    if target is not None:
                        for g in target["inner"].get("module", {}).get("items", []):
                            gi = item(g)
                            if gi is not None and gi["visibility"] == "public":
                                walk(f"{path}::{gi['name']}", gi, seen)
                    else:
                        out.add(f"{path}::* re-export {use['source']}")
                elif target is not None:
                    walk(f"{path}::{use['name']}", target, seen)
                else:
                    out.add(f"{path}::{use['name']} re-export {use['source']}")
            else:
                walk(f"{path}::{child['name']}", child, seen)
        return
    out.add(f"{path} {kind}")
    if kind == "struct":
        fields = inner["kind"].get("plain", {}).get("fields", []) if isinstance(inner["kind"], dict) else []
        for f in fields:
            fi = item(f)
            if fi is not None and fi["visibility"] == "public":
                out.add(f"{path}::{fi['name']} field")
        walk_impls(path, inner["impls"])
    elif kind == "enum":
        for v in inner["variants"]:
            vi = item(v)
            if vi is not None:
                out.add(f"{path}::{vi['name']} variant")
        walk_impls(path, inner["impls"])
    elif kind == "union":
        walk_impls(path, inner["impls"])
    elif kind == "trait":
        for sub in inner["items"]:
            si = item(sub)
            if si is not None:
                out.add(f"{path}::{si['name']} trait-{kind_of(si)}")


root = item(doc["root"])
walk(root["name"], root, frozenset())
print("\n".join(sorted(out)))
