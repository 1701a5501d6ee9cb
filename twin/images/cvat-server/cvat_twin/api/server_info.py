"""/api/server/* (cvat/apps/engine/views.py: ServerViewSet)."""

from .. import CVAT_VERSION
from ..routing import ROUTER, api

ABOUT = {
    "name": "Computer Vision Annotation Tool",
    "description": (
        "CVAT is completely re-designed and re-implemented version of Video Annotation Tool "
        "from Irvine, California tool. It is free, online, interactive video and image "
        "annotation tool for computer vision. It is being used by our team to annotate million "
        "of objects with different properties. Many UI and UX decisions are based on feedbacks "
        "from professional data annotation team."
    ),
    "version": CVAT_VERSION,
}


@ROUTER.route(r"^/api/server/about$", methods=("GET",))
def about(request):
    return api(dict(ABOUT))
