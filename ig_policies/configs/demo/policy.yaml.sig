{
  "algorithm": "Ed25519",
  "format": "ehl-policy-signature/1",
  "key_id": "3cf7d0f9d0ad8fce",
  "policy_sha256": "aefa90bff13c1b2367b6cfb0d4b42e228f2ef7abb2125a41899cb3f35b27452f",
  "signature": "PQi3l6LF1FE9s/kMMBsB8s3F45ErrU0jjlvHOsjXdcC9UyMN1MEOvdO9bQACDxGxSApMzgd/9n7105A47hO6Dw==",
  "signed_at": "2026-12-01T20:18:29+00:00",
  "signer": "demo-ig-officer (DEMO ONLY)"
}
