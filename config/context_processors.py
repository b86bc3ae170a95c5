from django.conf import settings
from django.http import HttpRequest


def brand(request: HttpRequest) -> dict[str, object]:
    """The product's name and contact details, from settings, for every page."""
    return {
        "product_name": settings.PRODUCT_NAME,
        "operator_name": settings.OPERATOR_NAME,
        "support_email": settings.SUPPORT_EMAIL,
        "site_url": settings.SITE_URL,
        "credits_per_video": settings.CREDITS_PER_VIDEO,
    }
