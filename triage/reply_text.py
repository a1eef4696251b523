"""Reply templates: a whitelist of named placeholders filled with plain strings.

Department heads edit template bodies, so a body is never handed to the Django template
engine or to str.format (either would let a body reach object attributes or tags). A body
is plain text with `{name}` placeholders; rendering replaces each with a plain string and
the result is escaped like any other text wherever it is shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from django.utils.translation import gettext_lazy as _

PLACEHOLDERS: dict[str, str] = {
    "datum": _("dagens datum (svarets datum)"),
    "remissdatum": _("remissens datum"),
    "undersokning": _("önskad undersökning, t.ex. ”röntgen LÄNDRYGGRAD”"),
    "tidigare_undersokning": _("tidigare undersökning, t.ex. ”DT buk”"),
    "tidigare_datum": _("datum för tidigare undersökning"),
    "tidigare_plats": _("var den tidigare undersökningen gjordes"),
    "fynd": _("fyndet vid den tidigare undersökningen"),
    "forslag": _("föreslagen metod, t.ex. ”MR alternativt skelettscintigrafi”"),
    "atgard": _("bokad undersökning"),
    "prioritet": _("priotid, t.ex. ”6 veckor”"),
    "saknas": _("uppgifter som saknas i remissen"),
    "patient_alder": _("patientens ålder i år"),
}

_TOKEN = re.compile(r"\{([^{}]*)\}")


class TemplateBodyError(ValueError):
    pass


def check_body(body: str) -> None:
    """Refuse unknown placeholders and unbalanced braces, naming the problem in Swedish."""
    unknown = [name for name in _TOKEN.findall(body) if name not in PLACEHOLDERS]
    if unknown:
        raise TemplateBodyError(
            _("Okänd platshållare: %(names)s. Giltiga är: %(valid)s.")
            % {
                "names": ", ".join("{" + name + "}" for name in dict.fromkeys(unknown)),
                "valid": ", ".join("{" + name + "}" for name in PLACEHOLDERS),
            }
        )
    leftover = _TOKEN.sub("", body)
    if "{" in leftover or "}" in leftover:
        raise TemplateBodyError(
            _("Klammerparenteserna är obalanserade; en platshållare skrivs {namn}.")
        )


def render_body(body: str, values: Mapping[str, str]) -> str:
    """Replace each known placeholder by its value; a missing value leaves a visible gap."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in PLACEHOLDERS:
            return match.group(0)
        value = values.get(name)
        return str(value) if value not in (None, "") else f"[{name}]"

    return _TOKEN.sub(replace, body)


_GAP = re.compile(r"\[(" + "|".join(PLACEHOLDERS) + r")\]")


def placeholders_in(body: str) -> set[str]:
    return {name for name in _TOKEN.findall(body) if name in PLACEHOLDERS}


def unfilled_gaps(text: str) -> list[str]:
    """The `[name]` gaps that render_body left where a value was missing."""
    return list(dict.fromkeys(_GAP.findall(text)))
