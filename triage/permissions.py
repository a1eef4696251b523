"""Roles as data: each role is a Django group holding its permissions."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser


class Role:
    RADIOLOGIST = "Radiolog"
    DEPARTMENT_HEAD = "Verksamhetschef"
    AUDITOR = "Revisor"


def has_role(user: AbstractBaseUser, role: str) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    names = getattr(user, "_role_names", None)
    if names is None:
        # Cached on the user object so that a page asks the database once.
        names = set(user.groups.values_list("name", flat=True))
        user._role_names = names
    return role in names
