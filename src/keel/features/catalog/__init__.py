"""The product catalog: public, cached reads; admin-only writes."""
