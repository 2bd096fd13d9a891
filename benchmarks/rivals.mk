# The rivals' environment: the project plus every loader we compare with, kept apart from .venv so
# the library never depends on them. Each rival is optional: one that fails to install is skipped
# (the suite then prints "skipped: X not installed") and the others still go in.
#
#   make bench-rivals        (from the repository root; this file is run with make -f)
#   make -f benchmarks/rivals.mk tf-compat   (our TFRecord files against TensorFlow's own, byte for byte)

PYTHON      ?= python3
RIVALS_VENV := .venv-rivals
RBIN        := $(RIVALS_VENV)/bin
# torch pinned exactly: a CPU wheel of this version is available; plain `torch` pulls CUDA (GBs).
# The others install under a constraint keeping that torch, so none of them can swap it out.
TORCH       := torch==2.13.0
OPTIONAL    := tensorflow-cpu torchdata grain spdl tfrecord

.PHONY: all rivals run tf-compat

all: run

$(RBIN)/python:
	$(PYTHON) -m venv $(RIVALS_VENV)
	$(RBIN)/python -m pip install -q --upgrade pip

$(RIVALS_VENV)/.installed: $(RBIN)/python pyproject.toml benchmarks/rivals.mk
	$(RBIN)/python -m pip install -q -e ".[bench,trio,test]"
	$(RBIN)/python -m pip install -q "$(TORCH)" || echo "skipped: $(TORCH) did not install"
	echo "$(TORCH)" > $(RIVALS_VENV)/constraints.txt
	for pkg in $(OPTIONAL); do \
		$(RBIN)/python -m pip install -q -c $(RIVALS_VENV)/constraints.txt "$$pkg" \
			|| echo "skipped: $$pkg did not install"; \
	done
	touch $@

rivals: $(RIVALS_VENV)/.installed

run: rivals
	$(RBIN)/python benchmarks/run_all.py

# The tests that need TensorFlow (skipped in .venv): TensorFlow reads our TFRecord files and we read
# its, and an uncompressed file is byte-identical to the one tf.io.TFRecordWriter writes.
tf-compat: rivals
	$(RBIN)/python -m pytest -q -p no:cacheprovider tests/tfrecord -k tensorflow
