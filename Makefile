# mmdistill: `make demo` and `make test` set everything up on a fresh machine.
# torch is installed FIRST and ALONE (the local CPU wheel); a plain `torch` requirement would pull CUDA.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mmdistill-installed

.PHONY: setup browser tts demo test test-fast bench clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup tts
	$(PY) -m mmdistill.demo

# Headless Chromium for the report tests (tests/test_report_browser.py); Debian's package, as root in CI.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium) \
	  || { echo "make test needs chromium for the report tests: apt-get install chromium (as root)"; exit 1; }

# Offline speech synthesis and the second emoji art style for the spoken-emoji dataset (data/spoken_emoji.py).
tts:
	@{ command -v espeak-ng && command -v flite && test -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf; } >/dev/null 2>&1 \
	  || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends espeak-ng flite fonts-noto-color-emoji) \
	  || { echo "spoken-emoji needs espeak-ng, flite and fonts-noto-color-emoji: apt-get install espeak-ng flite fonts-noto-color-emoji (as root)"; exit 1; }

# Everything: unit tests, import-layer contracts, and the `slow` ones (fault loops, multi-process, browser,
# paper-shape configs).
test: setup browser tts
	MMDISTILL_REQUIRE_BROWSER=1 $(PY) -m pytest -q -p no:cacheprovider

# The quick loop while editing (about two minutes on 2 cores): everything not marked `slow`.
test-fast: setup tts
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

bench: setup
	$(VENV)/bin/mmdistill bench --suite quick

clean-venv:
	rm -rf $(VENV)
