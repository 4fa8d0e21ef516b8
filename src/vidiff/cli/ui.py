"""`vidiff ui`: the web UI (a Gradio app, the `ui` extra) on this machine."""
from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("ui")
    def ui_cmd(
        host: str = typer.Option("127.0.0.1", help="address to listen on; another host (0.0.0.0: every "
                                 "interface) lets other machines in"),
        port: int = typer.Option(7860, help="port to listen on"),
        share: bool = typer.Option(False, "--share/--no-share", help="also open a public gradio.live link"),
        runs: Path = typer.Option(Path("runs"), help="folder whose checkpoints the Generate tab offers"),
    ):
        """Start the web UI: generate, animate a photo and poke it, extend / interpolate / upsample a video."""
        from ..utils import VidiffError

        if not 1 <= port <= 65535:
            raise VidiffError(f"--port must be between 1 and 65535; got {port}")
        try:
            from ..ui.app import launch  # gradio: loaded when the command runs
        except ModuleNotFoundError as e:
            if e.name != "gradio":
                raise
            raise VidiffError("the web UI needs gradio: pip install 'vidiff[ui]'") from None
        typer.echo(f"vidiff ui on http://{host}:{port}/ (Ctrl+C stops it)")
        launch(host=host, port=port, share=share, runs_dir=runs)
