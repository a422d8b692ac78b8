# How a receiver verifies a webhook: README.md shows this function verbatim (a test
# keeps the two identical), and the tests check real deliveries with it.
import hashlib
import hmac
import time


def verify_webhook(body: bytes, signature_header: str, secret: str, tolerance: int = 300) -> bool:
    """True if `body` was signed with `secret` less than `tolerance` seconds ago."""
    timestamp, signatures = None, []
    for item in signature_header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or abs(time.time() - timestamp) > tolerance:
        return False  # missing or stale timestamp: possibly a replayed request
    signed = f"{timestamp}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, signature) for signature in signatures)
