"""Connect protocol primitives: query-string hash, JWT verify/sign, lifecycle and webhook payloads.

Pure functions on PyJWT and hashlib; nothing here performs I/O.
"""
