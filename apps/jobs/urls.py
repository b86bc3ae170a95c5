from django.urls import include, path

from apps.jobs import views

app_name = "jobs"

team_urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("jobs/", views.submit, name="submit"),
    path("jobs/table/", views.jobs_table, name="table"),
    path("jobs/<uuid:public_id>/", views.job_detail, name="detail"),
    path("jobs/<uuid:public_id>/retry/", views.retry, name="retry"),
    path("jobs/<uuid:public_id>/cancel/", views.cancel, name="cancel"),
    path("jobs/<uuid:public_id>/download/", views.download, name="download"),
    path("jobs/<uuid:public_id>/video/", views.preview, name="preview"),
    path("jobs/<uuid:public_id>/original/", views.original, name="original"),
    path("jobs/<uuid:public_id>/poster/<str:which>.jpg", views.poster, name="poster"),
    path("uploads/", views.upload, name="upload"),
    path("uploads/presign/", views.upload_presign, name="upload_presign"),
    path("uploads/confirm/", views.upload_confirm, name="upload_confirm"),
    path("uploads/<uuid:public_id>/discard/", views.upload_discard, name="upload_discard"),
]

urlpatterns = [
    path("t/<uuid:team_id>/", include(team_urlpatterns)),
    path("hooks/kie/<str:token>/", views.kie_callback, name="kie_callback"),
    path("hooks/replicate/<str:token>/", views.replicate_callback, name="replicate_callback"),
    # Unauthenticated on purpose: a short-lived signed link a provider fetches the original by.
    path("originals/<str:token>/", views.original_link, name="original_link"),
]
