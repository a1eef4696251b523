"""URLs of the triage app (Swedish paths: they are what the radiologist sees)."""

from django.urls import path

from triage.views import referral, replies, worklist

app_name = "triage"

urlpatterns = [
    path("", worklist.worklist, name="worklist"),
    path("ta-nasta/", worklist.take_next, name="take_next"),
    path("remiss/<int:pk>/", referral.referral_detail, name="referral"),
    path("remiss/<int:pk>/forslag/", referral.recommendation_panel, name="recommendation"),
    path("remiss/<int:pk>/tidigare/", referral.prior_imaging_add, name="prior_imaging_add"),
    path(
        "remiss/<int:pk>/komplettering/", referral.request_information, name="request_information"
    ),
    path(
        "remiss/<int:pk>/komplettering-inkommen/",
        referral.information_received,
        name="information_received",
    ),
    path("remiss/<int:pk>/lamna-tillbaka/", referral.release, name="release"),
    path("remiss/<int:pk>/oppna-igen/", referral.reopen, name="reopen"),
    path("remiss/<int:pk>/akut-handlagd/", referral.emergency_handled, name="emergency_handled"),
    path("remiss/<int:pk>/svar/", replies.reply_edit, name="reply"),
    path("remiss/<int:pk>/svar/<int:reply_pk>/utskrift/", replies.reply_print, name="reply_print"),
]
