"""Thin adapters over aiokafka and httpx: foreign exceptions become result values here."""
