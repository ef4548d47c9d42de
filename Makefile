.PHONY: run test bench

# Set up everything on a fresh machine, then run web, worker, beat and the simulators.
run:
	scripts/run.sh

# The whole test suite against real PostgreSQL, Redis, Celery and chromium.
test:
	scripts/test.sh

# Benchmarks that print their figures (need the PostgreSQL of make test).
bench:
	.venv/bin/python bench/history_keyset.py
	.venv/bin/python bench/usmart_upload.py
	.venv/bin/python bench/web_throughput.py
	.venv/bin/python bench/engine_throughput.py
	.venv/bin/python bench/history_scale.py --rows 5000000
	.venv/bin/python bench/toucan_upload.py
	.venv/bin/python bench/tus_upload.py
	.venv/bin/python bench/tus_upload.py --storage s3 --size 1G --resume-size 512M
