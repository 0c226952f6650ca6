"""Authoritative zones read from master files or transfers: data, lookup and answers."""

from clusterdns.pkg.zone.data import NoChange, ZoneData, ZoneFileError, parse, parse_file
from clusterdns.pkg.zone.lookup import Lookup, Result
from clusterdns.pkg.zone.serve import ServedZone, respond

__all__ = ["Lookup", "NoChange", "Result", "ServedZone", "ZoneData", "ZoneFileError", "parse",
           "parse_file", "respond"]  # fmt: skip
