# make test: set up .venv, fetch and verify MNIST, install Fashion-MNIST, Chromium and PostgreSQL if missing, run every test.
# make run:  the same set-up, then start the lab on http://127.0.0.1:8501
# make share: the lab for a class: one Streamlit process per core behind HAProxy, one store, one cluster
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
FASHION := /usr/share/datasets/fashion-mnist

.PHONY: test run share fetch fashion lint browser postgres proxy clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

fetch: $(VENV)/.installed fashion
	$(PY) -m mnistnet fetch

# Fashion-MNIST, the second data set (mnistnet.data.load_fashion_mnist), comes from Debian's package;
# --reinstall also puts back a file deleted from an installed package.
fashion:
	@ls $(FASHION)/train-images-idx3-ubyte.gz $(FASHION)/train-labels-idx1-ubyte.gz \
	  $(FASHION)/t10k-images-idx3-ubyte.gz $(FASHION)/t10k-labels-idx1-ubyte.gz >/dev/null 2>&1 || { \
	  echo "installing Debian's dataset-fashion-mnist for the second data set"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall dataset-fashion-mnist) \
	  || { echo "could not install dataset-fashion-mnist: run 'sudo apt-get install -y dataset-fashion-mnist'"; exit 1; }; }

# Browser tests drive Debian's Chromium (Playwright's own download cannot work offline).
browser:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  || { echo "could not install chromium: run 'sudo apt-get install -y chromium'"; exit 1; }; }

# The store's tests also run on a throwaway PostgreSQL server (tests/pg.py), from Debian's package.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql for the store's tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) \
	  || { echo "could not install postgresql: run 'sudo apt-get install -y postgresql'"; exit 1; }; }

# `make share` (and its test) put several Streamlit processes behind Debian's HAProxy.
proxy:
	@command -v haproxy >/dev/null || { \
	  echo "installing Debian's haproxy for make share"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy) \
	  || { echo "could not install haproxy: run 'sudo apt-get install -y haproxy'"; exit 1; }; }

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

test: $(VENV)/.installed fetch browser postgres proxy lint
	$(PY) -m pytest -q

run: $(VENV)/.installed fetch
	$(VENV)/bin/streamlit run app.py --server.headless true --server.address 127.0.0.1 --server.port $(PORT)

share: $(VENV)/.installed fetch proxy
	@echo "Share this link on your local network: http://$$(hostname -I | awk '{print $$1}'):$(PORT)"
	$(PY) -m mnistnet.share --host 0.0.0.0 --port $(PORT)

clean:
	rm -rf $(VENV) .pytest_cache artifacts
