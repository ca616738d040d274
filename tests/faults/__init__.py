"""Fault-injection harness: do drills and recoveries survive faults in their own process?

drplan runs as a child process against a seeded moto server, through a proxy that counts, delays,
throttles, fails or refuses its AWS calls; scenarios kill or signal it, break its pipes and disks,
damage its journal, and take a census of what is left. See README.md beside this file, and
``python -m tests.faults --help``.
"""
