"""Roles as data: each role is a Django group (with a Role description) holding permissions."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied


class Role:
    RADIOLOGIST = "Radiolog"
    DEPARTMENT_HEAD = "Verksamhetschef"
    AUDITOR = "Revisor"


def user_role_names(user: AbstractBaseUser) -> set[str]:
    if not user.is_authenticated or not user.is_active:
        return set()
    names = getattr(user, "_role_names", None)
    if names is None:
        # Cached on the user object so that a request asks the database once.
        names = set(user.groups.values_list("name", flat=True))
        user._role_names = names
    return names


def has_role(user: AbstractBaseUser, role: str) -> bool:
    return role in user_role_names(user)


def role_required(*roles: str) -> Callable:
    """Anonymous users go to the login page; users without one of the roles get 403."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user_role_names(request.user) & set(roles):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
