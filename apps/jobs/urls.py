from django.urls import include, path

from apps.jobs.views import callbacks, pages, uploads

app_name = "jobs"

team_urlpatterns = [
    path("dashboard/", pages.dashboard, name="dashboard"),
    path("jobs/", pages.submit, name="submit"),
    path("jobs/table/", pages.jobs_table, name="table"),
    path("jobs/<uuid:public_id>/", pages.job_detail, name="detail"),
    path("jobs/<uuid:public_id>/retry/", pages.retry, name="retry"),
    path("jobs/<uuid:public_id>/cancel/", pages.cancel, name="cancel"),
    path("jobs/<uuid:public_id>/download/", pages.download, name="download"),
    path("jobs/<uuid:public_id>/video/", pages.preview, name="preview"),
    path("jobs/<uuid:public_id>/original/", pages.original, name="original"),
    path("jobs/<uuid:public_id>/poster/<str:which>.jpg", pages.poster, name="poster"),
    path("uploads/", uploads.upload, name="upload"),
    path("uploads/presign/", uploads.upload_presign, name="upload_presign"),
    path("uploads/confirm/", uploads.upload_confirm, name="upload_confirm"),
    path("uploads/<uuid:public_id>/discard/", uploads.upload_discard, name="upload_discard"),
]

urlpatterns = [
    path("t/<uuid:team_id>/", include(team_urlpatterns)),
    # Unauthenticated on purpose: providers call back, and fetch originals by signed links.
    path("hooks/<str:provider>/<str:token>/", callbacks.provider_callback, name="callback"),
    path("originals/<str:token>/", callbacks.original_link, name="original_link"),
]
