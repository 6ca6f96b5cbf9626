"""The page to try prompts: plain HTML and JavaScript from ``static/``, served as they are (no build step).

The page parses the NIfTI files it downloads (the input image and each prompt's mask) in the browser and draws
axial, coronal and sagittal slices, one opaque overlay canvas per view (shown half-transparent), so each
prompt's pixels can be counted on the canvas exactly.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse

STATIC = Path(__file__).parent / "static"
ASSETS = {"viewer.js": "text/javascript", "nifti.js": "text/javascript", "page.css": "text/css"}


def page_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    for name, media_type in ASSETS.items():
        app.add_api_route(f"/static/{name}", _asset(STATIC / name, media_type), include_in_schema=False)


def _asset(path: Path, media_type: str):
    def serve() -> FileResponse:
        return FileResponse(path, media_type=media_type)
    return serve
