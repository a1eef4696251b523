"""crispy_forms_tags' names, rendering with Django's own form templates instead.

The triage page's baseline (bench/views.py, triage_plain) renders triage/referral_detail.html
with this library in place of crispy_forms_tags, so that the figure compares the same page
with only the form rendering changed: `{% crispy form %}` becomes `{{ form }}`,
`field|as_crispy_field` becomes `{{ field.as_field_group }}`.
"""

from __future__ import annotations

from django import template

register = template.Library()


@register.simple_tag
def crispy(form, helper=None) -> str:
    return form.render()


@register.filter
def as_crispy_field(field) -> str:
    return field.as_field_group()


@register.filter(name="crispy")
def crispy_filter(form) -> str:
    return form.render()
