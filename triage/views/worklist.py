"""Views of the triage app."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def worklist(request):
    return render(request, "triage/worklist.html", {})
