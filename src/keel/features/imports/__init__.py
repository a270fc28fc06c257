"""Bulk imports run as jobs: the product CSV import (API, queue and `keel import-products`)."""
