"""DNS cutover readiness (issue 5): are MX, SPF, Autodiscover, DKIM and DMARC right for the
target provider, and has the change reached every nameserver and resolver?

Modules, one job each:

    addresses    ``IP[:PORT]`` and ``NAME=IP[:PORT]`` parsing (pure; used by the config too)
    model        ``Check`` (record, verdict, found, expected, message) and verdict ordering
    records      look-ups behind a one-method seam (``Resolver.query``); dnspython lives here
    spf          SPF parsing and the recursive DNS-lookup count (pure given a TXT fetcher)
    filters      known third-party filtering services (Mimecast, Proofpoint, ...)
    profiles     what "ready" means for m365 / google / custom, and pure evaluation
    propagation  authoritative nameservers queried one by one, serials, old-answer expiry
    check        orchestration: one ``DomainReport`` per domain, stored in the state DB

Importing this package does not import dnspython.
"""
