# Reproduce the shipped default model from the real ESC-10 recordings in ../shared/data.
# Runs on 2 CPU cores in about 1.5-2 hours (or far faster on a GPU); see edge_asc/models/MODEL_CARD.md.

DATA    ?= ../shared/data/esc10/manifest.csv
RUNS    ?= runs
CACHE   ?= $(RUNS)/cache
TRAIN    = edge-asc train --dataset csv --root $(DATA) --features logmel,cqt,gam --model joint \
           --width 0.25 --epochs 60 --learning-rate 1e-3 --lr-schedule cosine --sample-rate 22050 \
           --seed 0 --cache $(CACHE)

.PHONY: default-model validate-default-model

# 1. Choose and check the settings: train on folds 1-3, validate on fold 4, measure int8.
validate-default-model:
	$(TRAIN) --fold 4 --out $(RUNS)/esc10-fold4
	edge-asc export $(RUNS)/esc10-fold4 --quantize int8 --fusion max --cache $(CACHE) \
	    --out $(RUNS)/esc10-fold4/model-int8.easc

# 2. The shipped model: the same settings trained on all four folds.
default-model: validate-default-model
	$(TRAIN) --fold 0 --out $(RUNS)/esc10-all
	edge-asc export $(RUNS)/esc10-all --quantize int8 --fusion max --cache $(CACHE) \
	    --out edge_asc/models/default.easc
	edge-asc info edge_asc/models/default.easc
