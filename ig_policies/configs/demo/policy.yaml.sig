{
  "algorithm": "Ed25519",
  "format": "ehl-policy-signature/1",
  "key_id": "3cf7d0f9d0ad8fce",
  "policy_sha256": "ca03078cefc11164456604e59ddde1e0325f78dda77a37b48a5abce68c24cae7",
  "signature": "XbhIr/dirKYp/RgC94pEJrknNHrepXs/KAtuT6on/jqxSTlwpH6BamGyDdYxNwk1/E62of0YjFeYtHigD7uKBw==",
  "signed_at": "2026-12-01T20:17:02+00:00",
  "signer": "demo-ig-officer (DEMO ONLY)"
}
