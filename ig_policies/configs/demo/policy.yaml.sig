{
  "algorithm": "Ed25519",
  "format": "ehl-policy-signature/1",
  "key_id": "3cf7d0f9d0ad8fce",
  "policy_sha256": "ee26fff501df25372ed392c99f69d7314922ecd2a0fe935ac5d4c96a90456f4a",
  "signature": "vU8ZP8DDw+C+tqSIuRIAMjmdfYX3LcUZlIxgoRLm27jMJ0fCOx00K5OLUsu2FXv4ZVQ3jB3a3DbxAHyfx2JTAw==",
  "signed_at": "2026-11-22T21:55:21+00:00",
  "signer": "demo-ig-officer (DEMO ONLY)"
}
