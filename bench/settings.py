"""Settings of benchmarks that compare against other packages: the platform's plus django-hordak.

django-hordak (and its django-mptt) is installed for the benchmark only (`pip install
'.[bench]'`, which `make bench` does); the platform itself never loads it.
"""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "mptt", "hordak"]

# django-hordak reads these: one currency, amounts with two decimals like the benchmark's.
DEFAULT_CURRENCY = "USD"
HORDAK_CURRENCIES = ["USD"]
CURRENCIES = ["USD"]

# Measured as in production: Django's debug cursor formats and keeps every query's SQL, which
# costs more than some of the statements measured here.
DEBUG = False
