# Reproduce the models from the real recordings in ../shared/data, and the open-set benchmark.
# On 2 CPU cores a training run takes 15-60 minutes (far less on a GPU); see
# edge_asc/models/MODEL_CARD.md.

DATA     ?= ../shared/data
RUNS     ?= runs
CACHE    ?= $(RUNS)/cache

.PHONY: default-model open-set-manifest open-set-table joint-model validate-joint-model

# --- The shipped default model: ESC-10's ten classes plus a class `unknown` (nontarget/ and
# the non-target sources of blanket_ambient/), its leave-one-fold-out benchmark and the
# thresholds fitted on it ------------------------------------------------------------------
OPEN_SET  = $(RUNS)/open-set
OPEN_EPOCHS ?= 24
MANIFEST  = $(OPEN_SET)/manifest.csv
OPEN_TRAIN = edge-asc train --dataset csv --root $(MANIFEST) --features logmel,cqt \
            --model cdnn --width 0.25 --epochs $(OPEN_EPOCHS) --patch-hop 64 --augment \
            --learning-rate 1e-3 --lr-schedule cosine --sample-rate 22050 --seed 0 \
            --cache $(CACHE)
FOLDS     = 1 2 3 4
# The fusion rule the open-set table chose (the thresholds hold for that rule only).
FUSION    = $$(python -c "import json; print(json.load(open('$(OPEN_SET)/open_set.json'))['fitted']['fusion'])")

# Every non-target source in one fold, beside ESC-10's own folds.
open-set-manifest:
	python benchmarks/bench_open_set.py manifest --data $(DATA) --out $(MANIFEST)

# Run k never trains on fold k's ESC-10 clips nor on fold k's non-target sources; the
# threshold applied to fold k is fitted on the other folds' held-out scores.
open-set-table: open-set-manifest
	for fold in $(FOLDS); do $(OPEN_TRAIN) --fold $$fold --out $(OPEN_SET)/fold-$$fold || exit 1; done
	python benchmarks/bench_open_set.py table --runs $(OPEN_SET) --out $(OPEN_SET)/open_set.json

# The shipped model: the same recipe on every clip, its thresholds (fitted on all four folds'
# held-out scores, training data only) stored in the bundle.
default-model: open-set-table
	$(OPEN_TRAIN) --fold 0 --out $(OPEN_SET)/all
	edge-asc export $(OPEN_SET)/all --quantize int8 --fusion $(FUSION) --cache $(CACHE) \
	    --open-set $(OPEN_SET)/open_set.json --out edge_asc/models/default.easc
	edge-asc info edge_asc/models/default.easc

# --- The earlier default, kept for comparison: the paper's joint CNN + C-RNN on ESC-10's ten
# classes only (no class `unknown`), three spectrograms ------------------------------------
JOINT_TRAIN = edge-asc train --dataset csv --root $(DATA)/esc10/manifest.csv \
            --features logmel,cqt,gam --model joint --width 0.25 --epochs 60 \
            --learning-rate 1e-3 --lr-schedule cosine --sample-rate 22050 --seed 0 --cache $(CACHE)

# Train on folds 1-3, validate on fold 4, measure int8.
validate-joint-model:
	$(JOINT_TRAIN) --fold 4 --out $(RUNS)/esc10-fold4
	edge-asc export $(RUNS)/esc10-fold4 --quantize int8 --fusion max --cache $(CACHE) \
	    --out $(RUNS)/esc10-fold4/model-int8.easc

# The same settings on all four folds.
joint-model: validate-joint-model
	$(JOINT_TRAIN) --fold 0 --out $(RUNS)/esc10-all
	edge-asc export $(RUNS)/esc10-all --quantize int8 --fusion max --cache $(CACHE) \
	    --out $(RUNS)/esc10-all/model-int8.easc
