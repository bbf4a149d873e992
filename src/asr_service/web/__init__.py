"""The web console for call-takers and supervisors: static files served by the service itself (no build step, no
CDN, no web font), every action an API call a test can also make."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("static")


def install_web_console(app: FastAPI) -> None:
    """The page at `/`, its script and style under `/static/` (left out of the OpenAPI schema)."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def console() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
