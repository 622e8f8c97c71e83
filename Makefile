# facerec: `make install`, then `make test`; `make demo` runs the whole system in miniature.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STORE  ?= runs/store
SOURCE ?=
LFW    ?= ../shared/data/lfw
CFP    ?= ../shared/data/cfp
EXTRACTOR ?= mediapipe
MASTER ?=
IMG_SIZE ?= 112
# Without SOURCE, `make ingest` streams a VGGFace2 subset from the hub, as the demo does.
HUB_SUBSET ?= --streaming --limit-classes 200 --max-samples 2000
FACEREC := $(BIN)/python -m facerec.cli
SPARK_OPTS = $(if $(MASTER),--master $(MASTER),)

.PHONY: install test test-fast bench bench-landmarks bench-reader bench-train bench-autoencoder bench-ablation bench-cfp-ablation bench-pose \
	bench-gpu bench-codec-accuracy bench-scale ingest landmarks features canonical store demo clean help

help:
	@echo "make install   create $(VENV) and install facerec with its pinned dependencies"
	@echo "make test      run the whole pytest suite (slow LFW integration tests included)"
	@echo "make test-fast run only the fast unit tests"
	@echo "make bench     run the benchmarks and write benchmarks/results/*.json"
	@echo "make demo      the whole system in miniature (SOURCE=DIR for a local ImageFolder)"
	@echo "make ingest    SOURCE -> STORE/samples (SOURCE: ImageFolder, Parquet folder, saved dataset, hf:// URL;"
	@echo "               empty: a streamed VGGFace2 subset from the hub)"
	@echo "make landmarks STORE/samples -> STORE/landmarks/EXTRACTOR (Spark; MASTER=spark://... for a cluster)"
	@echo "make features  samples + landmarks -> STORE/features/EXTRACTOR-IMG_SIZE.zarr (Spark)"
	@echo "make canonical canonical landmarks per identity -> STORE/identities/ (Spark)"
	@echo "make store     all four in order (each one skipped when finished)"
	@echo "               defaults: STORE=$(STORE) EXTRACTOR=$(EXTRACTOR) IMG_SIZE=$(IMG_SIZE) MASTER=local[*]"
	@echo "make bench-scale  every stage at three generated sizes (benchmarks/results/scale.json)"
	@echo "make bench-cfp-ablation  input arms x 3 seeds scored on CFP-FF/FP (benchmarks/results/cfp_ablation.md)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'

test:
	$(BIN)/python -m pytest

test-fast:
	$(BIN)/python -m pytest -m "not slow"

ingest:
	$(FACEREC) ingest --store $(STORE) $(if $(SOURCE),--source $(SOURCE),$(HUB_SUBSET)) $(SPARK_OPTS)

landmarks:
	$(FACEREC) landmarks --store $(STORE) --extractor $(EXTRACTOR) $(SPARK_OPTS)

# features and canonical run the stages before them first (each is skipped when finished)
features: landmarks
	$(FACEREC) features --store $(STORE) --extractor $(EXTRACTOR) --img-size $(IMG_SIZE) $(SPARK_OPTS)

canonical: features
	$(FACEREC) canonical --store $(STORE) --extractor $(EXTRACTOR) --img-size $(IMG_SIZE) $(SPARK_OPTS)

store: ingest
	$(MAKE) canonical STORE=$(STORE) EXTRACTOR=$(EXTRACTOR) IMG_SIZE=$(IMG_SIZE) MASTER=$(MASTER)

bench: bench-landmarks bench-reader bench-train bench-autoencoder

bench-landmarks:
	$(BIN)/python -m benchmarks.bench_landmarks --lfw $(LFW)

# Every reader path in one run, including the crop codecs; copies in the accuracy figures of
# bench-codec-accuracy when benchmarks/results/crop_codec_accuracy.json exists.
bench-reader:
	$(BIN)/python -m benchmarks.bench_reader --lfw $(LFW)
	$(BIN)/python -m benchmarks.bench_integrity --lfw $(LFW)

# One small training run on bench-reader's store, then every crop codec copy embedded by it (slow on CPU).
bench-codec-accuracy: bench-reader
	$(BIN)/python -m benchmarks.crop_codec_accuracy --store runs/bench/reader-store-3000 --run runs/bench/codec-run

# Needs a CUDA GPU: ResNet-50 fed by each input path, time-boxed under 8 minutes.
bench-gpu:
	$(BIN)/python -m benchmarks.bench_gpu --lfw $(LFW)

# bench-train reads the store bench-reader builds (3,000 LFW faces, MediaPipe).
bench-train: bench-reader
	$(BIN)/python benchmarks/bench_train.py --store runs/bench/reader-store-3000 --backbone resnet18 \
	  --num-workers 2 --out benchmarks/results/train.json

bench-scale:
	$(BIN)/python -m benchmarks.bench_scale --lfw $(LFW)

bench-autoencoder:
	$(BIN)/python benchmarks/bench_autoencoder.py --work runs/bench/autoencoder

bench-ablation:
	$(BIN)/python benchmarks/ablation.py --lfw-dir $(LFW) --work runs/bench/ablation

# The pose answer: 3 arms x 3 seeds on CFP-FF/FP (+ ArcFace beside), about 1 h on 2 cores
bench-cfp-ablation:
	$(BIN)/python -m benchmarks.cfp_ablation --lfw-dir $(LFW) --cfp-dir $(CFP) --work runs/bench/cfp_ablation

# Detection and |yaw| on CFP frontal/profile, LFW and aligned crops, per extractor (before/after the
# profile retries). MediaPipe on all CFP profiles; dlib on a sample (its CNN costs about 1 s a profile).
bench-pose:
	$(BIN)/python -m benchmarks.bench_pose --extractors mediapipe --profile-step 1 --frontal-step 2 --lfw-images 500 --crops 300
	$(BIN)/python -m benchmarks.bench_pose --extractors dlib --profile-step 20 --frontal-step 50 --lfw-images 150 --crops 150

demo:
	$(BIN)/facerec demo $(if $(SOURCE),--source $(SOURCE),)

clean:
	rm -rf runs .pytest_cache
