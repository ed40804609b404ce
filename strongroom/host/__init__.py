"""Talking to Bitbucket: credentials, token exchange, REST reads, rate limits and event parsing."""
