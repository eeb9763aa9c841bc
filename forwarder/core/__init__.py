"""The sans-I/O core: pure, synchronous logic with time passed in as an argument.

Nothing under this package imports aiokafka, httpx or aiohttp, reads the environment or
touches the network; every module is unit-tested without a broker.
"""
