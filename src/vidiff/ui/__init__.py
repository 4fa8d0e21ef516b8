"""The web UI (`vidiff ui`): a Gradio app over generation, photo animation and video operations.

generate.py, animate.py, video_ops.py and uploads.py hold the work as plain functions (no Gradio);
app.py lays out the page (imports Gradio, the `ui` extra).
"""
