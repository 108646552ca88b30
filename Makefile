# Reproduce the shipped default model and its open-set table from the real recordings in
# ../shared/data (ESC-10 folds 1-4 as the ten classes; nontarget/ and the non-target sources of
# blanket_ambient/ as the class `unknown`). On 2 CPU cores: about 15 minutes per training run,
# five runs; far faster on a GPU. See edge_asc/models/MODEL_CARD.md.

DATA     ?= ../shared/data
RUNS     ?= runs
CACHE    ?= $(RUNS)/cache
OPEN_SET  = $(RUNS)/open-set
MANIFEST  = $(OPEN_SET)/manifest.csv
TRAIN     = edge-asc train --dataset csv --root $(MANIFEST) --features logmel,cqt \
            --model cdnn --width 0.25 --epochs 6 --patch-hop 64 --augment \
            --learning-rate 1e-3 --lr-schedule cosine --sample-rate 22050 --seed 0 \
            --cache $(CACHE)
FOLDS     = 1 2 3 4
# The fusion rule the open-set table chose (the thresholds hold for that rule only).
FUSION    = $$(python -c "import json; print(json.load(open('$(OPEN_SET)/open_set.json'))['fitted']['fusion'])")

.PHONY: manifest open-set-table default-model

# The ten classes with their folds, plus every non-target source in one fold as `unknown`.
manifest:
	python benchmarks/bench_open_set.py manifest --data $(DATA) --out $(MANIFEST)

# Leave-one-fold-out: fold k's ESC-10 clips and fold k's non-target sources are never trained
# on by run k; the threshold applied to fold k is fitted on the other folds' held-out scores.
open-set-table: manifest
	for fold in $(FOLDS); do $(TRAIN) --fold $$fold --out $(OPEN_SET)/fold-$$fold || exit 1; done
	python benchmarks/bench_open_set.py table --runs $(OPEN_SET) --out $(OPEN_SET)/open_set.json

# The shipped model: the same recipe on every clip, with the threshold fitted on all four
# folds' held-out scores (training data only) stored in the bundle.
default-model: open-set-table
	$(TRAIN) --fold 0 --out $(RUNS)/default
	edge-asc export $(RUNS)/default --quantize int8 --fusion $(FUSION) --cache $(CACHE) \
	    --open-set $(OPEN_SET)/open_set.json --out edge_asc/models/default.easc
	edge-asc info edge_asc/models/default.easc
