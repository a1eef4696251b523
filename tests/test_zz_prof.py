import pyinstrument
from django.urls import reverse

from tests.test_query_budgets import FACTS, _hidden, make_referral


def test_profile(client, radiologist):
    referral = make_referral()
    client.force_login(radiologist)
    page = reverse("triage:referral", args=[referral.pk])
    hidden = _hidden(client.get(page).content.decode())
    url = reverse("triage:recommendation", args=[referral.pk])
    data = {**hidden, **FACTS}
    client.post(url, data)
    profiler = pyinstrument.Profiler(interval=0.0002)
    profiler.start()
    for _ in range(300):
        client.post(url, data)
    profiler.stop()
    open("/tmp/prof_rec.txt", "w").write(profiler.output_text(unicode=False, show_all=False))
    profiler = pyinstrument.Profiler(interval=0.0002)
    profiler.start()
    for _ in range(40):
        client.get(page)
    profiler.stop()
    open("/tmp/prof_page.txt", "w").write(profiler.output_text(unicode=False, show_all=False))
