"""Cryptography of deai-data: data keys, sealed shards (streaming AEAD) and the keystore."""
