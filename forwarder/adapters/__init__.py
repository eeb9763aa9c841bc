"""Thin adapters over aiokafka, httpx and aiohttp (the ops port): foreign exceptions become
result values here. They implement the protocols of ``forwarder.ports``.
"""
