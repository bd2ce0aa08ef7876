"""Which layer of an annotation PSD is the scan, the tissue silhouette, the bone and the fat.

Rules, applied in this order (documented in docs/synthetic.md and bm-prepare --help):
1. `--layers` overrides: role=NAME (exact layer name) or role=#INDEX (0 = bottom layer).
2. Names, case-insensitive: "no background" / "nobackground" / "no_background" or a name
   containing "tissue" -> tissue; a name that is exactly "background" (Photoshop's default
   for the bottom layer) or contains "scan", "raw" or "original" -> scan; a name containing
   "bone" -> bone; containing "fat" -> fat. Two layers claiming one role is an error.
3. Structure, for the roles still open, among the layers still unassigned:
   scan = the bottom layer; fat = the one layer with a layer mask; tissue and bone = the
   layers without a mask: with two left, the one covering more pixels is the tissue (the
   silhouette contains the bone); with one left, it takes the one open role.
Any role left open, or a structural choice that is not unique, is an error.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from bonemarrow.training.psd.layers import LayerInfo

ROLES = ("scan", "tissue", "bone", "fat")


class RoleError(ValueError):
    """The layers' roles cannot be decided; the message says why."""


def parse_layer_overrides(text: str | None) -> dict[str, str]:
    """'scan=Background,bone=#2' -> {'scan': 'Background', 'bone': '#2'}."""
    overrides: dict[str, str] = {}
    if not text:
        return overrides
    for part in text.split(","):
        if not part.strip():
            continue
        role, sep, value = part.partition("=")
        role = role.strip().lower()
        if not sep or role not in ROLES or not value.strip():
            raise ValueError(f"--layers expects role=LAYER pairs with roles {', '.join(ROLES)}; got {part.strip()!r}")
        if role in overrides:
            raise ValueError(f"--layers names the {role} layer twice")
        overrides[role] = value.strip()
    return overrides


def role_from_name(name: str) -> str | None:
    text = name.strip().lower()
    if re.fullmatch(r"no[\s_-]*background", text) or "tissue" in text:
        return "tissue"
    if text == "background" or any(word in text for word in ("scan", "raw", "original")):
        return "scan"
    if "bone" in text:
        return "bone"
    if "fat" in text:
        return "fat"
    return None


def _describe(layers: list[LayerInfo]) -> str:
    return ", ".join(f"#{layer.index} {layer.name!r}{' (mask)' if layer.has_mask else ''}" for layer in layers)


def assign_roles(layers: list[LayerInfo], overrides: dict[str, str] | None = None,
                 area: Callable[[LayerInfo], int] | None = None) -> dict[str, tuple[LayerInfo, str]]:
    """Map each role to (layer, how it was found: "option", "name" or "structure").

    `area(layer)` counts a layer's covered pixels; it is only called to tell the
    tissue silhouette from the bone when neither is named.
    """
    roles: dict[str, tuple[LayerInfo, str]] = {}
    used: set[int] = set()

    def take(role: str, layer: LayerInfo, how: str) -> None:
        if layer.index in used:
            other = next(r for r, (l, _) in roles.items() if l.index == layer.index)
            raise RoleError(f"layer #{layer.index} {layer.name!r} would be both {other} and {role}")
        roles[role] = (layer, how)
        used.add(layer.index)

    for role, wanted in (overrides or {}).items():
        matches = [layer for layer in layers if layer.name == wanted]
        if not matches and re.fullmatch(r"#\d+", wanted) and int(wanted[1:]) < len(layers):
            matches = [layers[int(wanted[1:])]]
        if len(matches) != 1:
            raise RoleError(f"--layers {role}={wanted}: {'no' if not matches else 'more than one'} such layer "
                            f"(layers: {_describe(layers)})")
        take(role, matches[0], "option")

    by_name: dict[str, list[LayerInfo]] = {}
    for layer in layers:
        role = role_from_name(layer.name)
        if role and role not in roles and layer.index not in used:
            by_name.setdefault(role, []).append(layer)
    for role, claimed in by_name.items():
        if len(claimed) > 1:
            raise RoleError(f"more than one layer is named like the {role}: {_describe(claimed)}")
        take(role, claimed[0], "name")

    free = [layer for layer in layers if layer.index not in used]
    if "scan" not in roles and layers and layers[0].index not in used:
        take("scan", layers[0], "structure")
        free = [layer for layer in free if layer.index != layers[0].index]
    if "fat" not in roles:
        masked = [layer for layer in free if layer.has_mask]
        if len(masked) == 1:
            take("fat", masked[0], "structure")
        elif len(masked) > 1:
            raise RoleError(f"cannot tell the fat layer: several layers have masks ({_describe(masked)})")
    open_roles = [role for role in ("tissue", "bone") if role not in roles]
    plain = [layer for layer in free if not layer.has_mask and layer.index not in used]
    if open_roles:
        if len(open_roles) == 2 and len(plain) == 2 and area is not None:
            first, second = sorted(plain, key=area, reverse=True)
            take("tissue", first, "structure")
            take("bone", second, "structure")
        elif len(open_roles) == 1 and len(plain) == 1:
            take(open_roles[0], plain[0], "structure")
        elif plain:
            raise RoleError(f"cannot tell the {' and '.join(open_roles)} layer{'s' if len(open_roles) > 1 else ''} "
                            f"apart among {_describe(plain)}; name them or use --layers")
    missing = [role for role in ROLES if role not in roles]
    if missing:
        raise RoleError(f"no {' / '.join(missing)} layer (layers: {_describe(layers) or 'none'})")
    return roles
