"""A local stand-in for RingCentral's REST API, run as a separate process.

rcfs itself never imports this package: the demo, the tests and the benchmarks start it with
``python -m rcfs.emulator`` and talk to it over HTTP(S) like they would to RingCentral.
"""
